"""How a merge resolves the consents of two records of one person.

A consent row is an explicit choice the person made (or that an earlier merge carried
over from one they made). Per purpose, channel and partner:

- where both records hold a choice, the most restrictive one stands: a grant only where
  both granted, with the slices both allowed;
- where one record holds a choice, it stands: a record without one (an anonymous visitor
  identified later, a duplicate never asked) has refused nothing and granted nothing, so
  it never overrides the other;
- where neither does, there is nothing to record.

A `partner_sharing` choice without a partner id is the "blanket" one, for every partner
(what Global Privacy Control records, `privacy_signals`). A blanket refusal is a record's
choice for every partner it has not chosen for one by one, so it restricts the other
record's partner grants; a blanket grant lets no partner see anything by itself (a
partner needs its own grant with slices), so it stands for no partner.

The merge records only what changes on the survivor, under source `merge`; partner-share
treats such a change as "stop sharing", never as the person's withdrawal, so it sends the
partner no deletion notice for what it received under the survivor's grant.
"""

from collections.abc import Mapping
from dataclasses import dataclass

PARTNER_SHARING = "partner_sharing"


ConsentKey = tuple[str, str, str]  # purpose, channel ("" when none), partner id ("" when none)


BLANKET_SHARING: ConsentKey = (PARTNER_SHARING, "", "")  # sharing with every partner


@dataclass(frozen=True)
class Choice:
    """One explicit choice of a record: granted or refused, and the slices it allows."""

    granted: bool
    slices: tuple[str, ...] = ()


REFUSED = Choice(granted=False)


def most_restrictive(purpose: str, one: Choice, other: Choice) -> Choice:
    """The choice allowing only what both allow."""
    if not (one.granted and other.granted):
        return REFUSED
    slices = tuple(sorted(set(one.slices) & set(other.slices)))
    if purpose == PARTNER_SHARING and not slices and (one.slices or other.slices):
        return REFUSED  # sharing nothing with a partner is not sharing
    return Choice(granted=True, slices=slices)


def resolve(mine: Choice | None, theirs: Choice | None, purpose: str) -> Choice | None:
    """The survivor's choice after the merge; None when neither record made one."""
    if mine is None:
        return theirs
    if theirs is None:
        return mine
    return most_restrictive(purpose, mine, theirs)


def effective(choices: Mapping[ConsentKey, Choice], key: ConsentKey) -> Choice | None:
    """A record's choice for `key`: its own, else the blanket refusal for a partner."""
    own = choices.get(key)
    if own is not None or key[0] != PARTNER_SHARING or key == BLANKET_SHARING:
        return own
    blanket = choices.get(BLANKET_SHARING)
    return REFUSED if blanket is not None and not blanket.granted else None


def merge_changes(
    survivor: Mapping[ConsentKey, Choice], merged: Mapping[ConsentKey, Choice]
) -> dict[ConsentKey, Choice]:
    """The choices the survivor must record so it holds the merged result, by key."""
    changes: dict[ConsentKey, Choice] = {}
    for key in sorted(set(survivor) | set(merged)):
        mine = effective(survivor, key)
        result = resolve(mine, effective(merged, key), key[0])
        if result is not None and result != mine:
            changes[key] = result
    return changes
