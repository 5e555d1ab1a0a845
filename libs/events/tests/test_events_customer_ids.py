"""The one resolver of customer ids through merges and erasure, against in-memory lookups."""

import asyncio
from collections.abc import Collection, Mapping

from hypothesis import given
from hypothesis import strategies as st

from rapport_events.customer_ids import CHAIN_LIMIT, owners_through_merges, resolve, resolve_all


class FakeLookups:
    """Merge links and tombstones in dicts; counts the lookups as a service's queries."""

    def __init__(self, links: Mapping[str, str], erased: Collection[str] = ()) -> None:
        self.links, self.erased = dict(links), set(erased)
        self.survivor_lookups: list[set[str]] = []
        self.erased_lookups: list[set[str]] = []

    async def survivors_of(self, ids: set[str]) -> dict[str, str]:
        self.survivor_lookups.append(set(ids))
        return {i: self.links[i] for i in ids if i in self.links}

    async def erased_among(self, ids: set[str]) -> set[str]:
        self.erased_lookups.append(set(ids))
        return ids & self.erased

    def all(self, ids: Collection[str]) -> dict[str, str | None]:
        return asyncio.run(resolve_all(ids, self.survivors_of, self.erased_among))

    def one(self, customer_id: str) -> str | None:
        return asyncio.run(resolve(customer_id, self.survivors_of, self.erased_among))


def naive(customer_id: str, links: Mapping[str, str], erased: Collection[str]) -> str | None:
    """One id at a time, one link at a time: what the batched answer must equal."""
    seen = [customer_id]
    for _ in range(CHAIN_LIMIT):
        survivor = links.get(seen[-1])
        if survivor is None or survivor == seen[-1]:
            break
        seen.append(survivor)
    return None if any(i in erased for i in seen) else seen[-1]


class TestOneHop:
    def test_an_id_never_merged_owns_itself(self) -> None:
        assert FakeLookups({}).one("a") == "a"

    def test_a_merged_id_belongs_to_its_survivor(self) -> None:
        assert FakeLookups({"dup": "a"}).one("dup") == "a"

    def test_a_self_link_ends_the_chain(self) -> None:
        assert FakeLookups({"a": "a"}).one("a") == "a"

    def test_no_ids_ask_nothing(self) -> None:
        lookups = FakeLookups({"dup": "a"})
        assert lookups.all([]) == {}
        assert lookups.survivor_lookups == [] and lookups.erased_lookups == []


class TestChains:
    def test_a_chain_is_followed_to_its_end(self) -> None:
        assert FakeLookups({"c": "b", "b": "a"}).one("c") == "a"

    def test_a_chain_costs_one_lookup_a_level_for_the_whole_batch(self) -> None:
        lookups = FakeLookups({"c": "b", "b": "a", "y": "x", "z": "x"})
        assert lookups.all(["c", "y", "z", "a"]) == {"c": "a", "y": "x", "z": "x", "a": "a"}
        assert lookups.survivor_lookups == [{"c", "y", "z", "a"}, {"b", "x"}]
        assert lookups.erased_lookups == [{"a", "b", "c", "x", "y", "z"}]

    def test_an_id_is_asked_once_even_when_chains_share_it(self) -> None:
        lookups = FakeLookups({"c": "b", "b": "a"})
        lookups.all(["c", "b"])
        assert lookups.survivor_lookups == [{"c", "b"}, {"a"}]

    def test_a_cycle_stops_at_the_chain_limit(self) -> None:
        lookups = FakeLookups({"a": "b", "b": "a"})
        assert lookups.one("a") == ("a" if CHAIN_LIMIT % 2 == 0 else "b")
        assert len(lookups.survivor_lookups) <= CHAIN_LIMIT

    def test_a_chain_longer_than_the_limit_stops_there(self) -> None:
        links = {f"id-{n}": f"id-{n + 1}" for n in range(CHAIN_LIMIT + 5)}
        lookups = FakeLookups(links)
        assert lookups.one("id-0") == f"id-{CHAIN_LIMIT}"
        assert len(lookups.survivor_lookups) == CHAIN_LIMIT


class TestErasure:
    def test_an_erased_id_answers_none(self) -> None:
        assert FakeLookups({}, erased={"a"}).one("a") is None

    def test_erased_at_the_start_of_a_chain(self) -> None:
        assert FakeLookups({"c": "b", "b": "a"}, erased={"c"}).one("c") is None

    def test_erased_in_the_middle_of_a_chain(self) -> None:
        lookups = FakeLookups({"c": "b", "b": "a"}, erased={"b"})
        assert lookups.all(["c", "a"]) == {"c": None, "a": "a"}

    def test_an_erased_owner_answers_none_for_all_merged_into_it(self) -> None:
        lookups = FakeLookups({"c": "b", "b": "a"}, erased={"a"})
        assert lookups.all(["a", "b", "c"]) == {"a": None, "b": None, "c": None}

    def test_erased_on_a_cycle(self) -> None:
        assert FakeLookups({"a": "b", "b": "a"}, erased={"b"}).one("a") is None


ids = st.sampled_from([f"c{n}" for n in range(12)])


class TestAgainstOneAtATime:
    @given(
        links=st.dictionaries(ids, ids, max_size=12),
        erased=st.sets(ids, max_size=4),
        asked=st.sets(ids, min_size=1),
    )
    def test_the_batch_answers_what_each_id_alone_and_the_naive_walk_answer(
        self, links: dict[str, str], erased: set[str], asked: set[str]
    ) -> None:
        lookups = FakeLookups(links, erased)
        batch = lookups.all(asked)
        assert batch == {i: naive(i, links, erased) for i in asked}
        assert batch == {i: FakeLookups(links, erased).one(i) for i in asked}
        assert len(lookups.erased_lookups) == 1
        assert len(lookups.survivor_lookups) <= CHAIN_LIMIT


class TestOwnersThroughMerges:
    def test_the_owner_is_named_even_when_erased(self) -> None:
        lookups = FakeLookups({"c": "b", "b": "a"}, erased={"a", "b"})
        owners = asyncio.run(owners_through_merges(["c", "x"], lookups.survivors_of))
        assert owners == {"c": "a", "x": "x"}
        assert lookups.erased_lookups == []

    @given(links=st.dictionaries(ids, ids, max_size=12), asked=st.sets(ids))
    def test_it_is_resolve_all_without_erasure(
        self, links: dict[str, str], asked: set[str]
    ) -> None:
        lookups = FakeLookups(links)
        owners = asyncio.run(owners_through_merges(asked, lookups.survivors_of))
        assert owners == lookups.all(asked)
