"""Events partner-share reacts to, by type: the frequent ones a run at a time (`@batch`),
each sent to the projection of its domain; merges and erasures, one at a time, to
`lifecycle`."""

from rapport_events import types
from rapport_events.consumer import HandlerMap
from rapport_partner_share import lifecycle
from rapport_partner_share.consents import projection as consents
from rapport_partner_share.customers import projection as customers
from rapport_partner_share.slices import projection as slices

HANDLERS: HandlerMap = {
    types.CustomerRegistered: [customers.apply_registrations],
    types.ConsentGranted: [consents.apply_consents],
    types.ConsentRevoked: [consents.apply_consents],
    types.CustomerUpdated: [slices.apply_customer_updates],
    types.OrderCompleted: [slices.apply_orders],
    types.SegmentEntered: [slices.apply_segment_changes],
    types.SegmentExited: [slices.apply_segment_changes],
    types.LoyaltyPointsEarned: [slices.apply_points],
    types.CustomerMerged: [lifecycle.apply_merge],
    types.CustomerErased: [lifecycle.apply_erasure],
}
