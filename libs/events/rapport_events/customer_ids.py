"""Who a customer id belongs to now: the one resolver of ids through merges and erasure.

A merge leaves the duplicate's id pointing at its survivor; a later merge of the survivor
makes a chain. Every service answers the same question the same way: follow the chain to
the id that owns the data now, and answer None when the id, any id on its chain or that
owner was erased (`resolve`, `resolve_all`). A service supplies two set-based lookups (its
merge links and its tombstones); the chain is followed a level at a time, one lookup for
the whole frontier. The owner of an erased id, for the few callers that must name it, is
a separate, explicitly named answer (`owners_through_merges`).
"""

from collections.abc import Awaitable, Callable, Collection, Iterable, Mapping

# Bounds a chain so a cycle in bad data cannot loop forever; real chains are a few links.
CHAIN_LIMIT = 16

SurvivorsOf = Callable[[set[str]], Awaitable[Mapping[str, str]]]
"""merged id -> the id it was merged into, for those of the ids merged away."""

ErasedAmong = Callable[[set[str]], Awaitable[Collection[str]]]
"""The ids among these that were erased."""


async def resolve_all(
    customer_ids: Iterable[str], survivors_of: SurvivorsOf, erased_among: ErasedAmong
) -> dict[str, str | None]:
    """Each id's owner now, through merge chains; None when erased anywhere on its chain."""
    ids = set(customer_ids)
    if not ids:
        return {}
    links = await _links(ids, survivors_of)
    chains = {customer_id: chain(customer_id, links) for customer_id in ids}
    erased = set(await erased_among({link for ids_on in chains.values() for link in ids_on}))
    return {
        customer_id: None if erased.intersection(ids_on) else ids_on[-1]
        for customer_id, ids_on in chains.items()
    }


async def resolve(
    customer_id: str, survivors_of: SurvivorsOf, erased_among: ErasedAmong
) -> str | None:
    """One id's owner now, through merge chains; None when erased anywhere on its chain."""
    return (await resolve_all([customer_id], survivors_of, erased_among))[customer_id]


async def owners_through_merges(
    customer_ids: Iterable[str], survivors_of: SurvivorsOf
) -> dict[str, str]:
    """Each id's owner through merge chains, erased or not.

    Only for a caller that must name the owner of an erased id (to drop what arrives
    about it, or to say who holds a value); everyone else wants `resolve_all`.
    """
    ids = set(customer_ids)
    links = await _links(ids, survivors_of) if ids else {}
    return {customer_id: chain(customer_id, links)[-1] for customer_id in ids}


async def _links(ids: set[str], survivors_of: SurvivorsOf) -> dict[str, str]:
    """The merge links reachable from `ids` within CHAIN_LIMIT hops: one lookup a level."""
    links: dict[str, str] = {}
    asked: set[str] = set()
    frontier = ids
    for _ in range(CHAIN_LIMIT):
        frontier = frontier - asked
        if not frontier:
            break
        asked |= frontier
        found = await survivors_of(frontier)
        links.update(found)
        frontier = set(found.values())
    return links


def chain(customer_id: str, links: Mapping[str, str]) -> list[str]:
    """The ids from `customer_id` to its owner, at most CHAIN_LIMIT links followed.

    A self-link ends the chain; a cycle stops at the limit, on whichever id it reached.
    """
    ids_on = [customer_id]
    for _ in range(CHAIN_LIMIT):
        survivor = links.get(ids_on[-1])
        if survivor is None or survivor == ids_on[-1]:
            break
        ids_on.append(survivor)
    return ids_on
