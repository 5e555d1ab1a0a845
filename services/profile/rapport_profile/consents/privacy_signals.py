"""Global Privacy Control and consent-manager choices on tracking calls, as consents.

A browser with Global Privacy Control on sends `Sec-GPC: 1` on every request
(https://privacycg.github.io/gpc-spec/); an SDK may also carry it as `context.gpc: true`,
and Segment's consent management sends the person's choices from the site's consent
manager as `context.consent.categoryPreferences` (`{"DataSharing": false, ...}`, keyed by
the category id). Any of them on a tracking call is the person refusing that their data
be sold or shared: profile records it as a refused `partner_sharing` consent for every
partner (the "blanket" choice: no partner id) and revokes each partner grant that stands.

The refusal is recorded once: while the blanket refusal stands, later calls carrying the
same signal change nothing, so a grant the person gives a partner afterwards (through the
consent API) is their choice again and holds until they refuse again in another way.
"""

from collections.abc import Collection, Mapping
from typing import Any

from rapport_profile.consents import rules
from rapport_profile.consents.rules import Choice, ConsentKey

GPC_HEADER = "gpc_header"  # the source on the receipt: Sec-GPC: 1 on the request


GPC_CONTEXT = "gpc_context"  # context.gpc: true in the message


CONSENT_CATEGORIES = "consent_categories"  # a sharing category refused in categoryPreferences


DEFAULT_SHARING_CATEGORIES = ("DataSharing",)


def header_says_gpc(value: str | None) -> bool:
    """Whether a `Sec-GPC` header value turns Global Privacy Control on (only "1" does)."""
    return value is not None and value.strip() == "1"


def refusal_source(
    context: Mapping[str, Any], *, gpc_header: bool, sharing_categories: Collection[str]
) -> str | None:
    """Why a tracking call refuses sale and sharing, as the receipt's source; None if it
    does not. The header wins, then `context.gpc`, then the consent manager's categories."""
    if gpc_header:
        return GPC_HEADER
    if context.get("gpc") is True:
        return GPC_CONTEXT
    consent = context.get("consent")
    preferences = consent.get("categoryPreferences") if isinstance(consent, dict) else None
    if isinstance(preferences, dict) and any(
        preferences.get(category) is False for category in sharing_categories
    ):
        return CONSENT_CATEGORIES
    return None


def refusal_changes(current: Mapping[ConsentKey, Choice]) -> list[ConsentKey]:
    """The consents to record as refused so a record refuses every sharing: none while the
    blanket refusal stands, else the blanket and every partner grant."""
    blanket = current.get(rules.BLANKET_SHARING)
    if blanket is not None and not blanket.granted:
        return []
    grants = sorted(
        key
        for key, choice in current.items()
        if key[0] == rules.PARTNER_SHARING and key != rules.BLANKET_SHARING and choice.granted
    )
    return [rules.BLANKET_SHARING, *grants]
