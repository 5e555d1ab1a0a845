"""Events profile reacts to: every type lands on the timeline; some also feed metrics.

The hot types are applied a run at a time (`@batch`): a fetch's consecutive events of
one type reach their projection together and are written with set-based statements.
"""

from rapport_events import types
from rapport_events.consumer import Handler, HandlerMap
from rapport_profile.analytics import projection as analytics
from rapport_profile.customers import projection as customers
from rapport_profile.gdpr import projection as gdpr
from rapport_profile.timeline import projection as timeline

# What a type does beyond landing on the timeline.
SPECIFIC: dict[type, list[Handler]] = {
    types.OrderCompleted: [analytics.record_orders],
    types.LoyaltyPointsEarned: [analytics.record_points],
    types.SegmentEntered: [customers.record_segments],
    types.SegmentExited: [customers.record_segments],
    types.PartnerDataDisclosed: [timeline.record_disclosures],
}

HANDLERS: HandlerMap = {
    **{model: [timeline.record_timeline, *SPECIFIC.get(model, [])] for model in types.EVENT_MODELS},
    # Rare, and its purge deletes aliases that later events resolve through: applied alone
    # so each of its records splits the runs around it.
    types.CustomerErased: [gdpr.apply_erasure],
}
