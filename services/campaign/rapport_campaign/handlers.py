"""Events campaign reacts to, by type: each maps to its projection function.

Each handler runs in the consumer's transaction with the inbox claim, so its
projection rows, journey timers, memberships and outbox events commit together.
The hot types take runs (`@batch`): a fetch's consecutive events of one type at once.
"""

from rapport_campaign import lifecycle
from rapport_campaign.audience import projection as audience
from rapport_events import types
from rapport_events.consumer import HandlerMap

HANDLERS: HandlerMap = {
    types.CustomerRegistered: [audience.apply_registrations],
    types.CustomerUpdated: [audience.apply_customer_updates],
    types.CustomerMerged: [lifecycle.apply_merge],
    types.CustomerErased: [lifecycle.apply_erasure],
    types.ConsentGranted: [audience.apply_consents],
    types.ConsentRevoked: [audience.apply_consents],
    types.OrderCompleted: [audience.record_orders],
    types.CustomerValueChanged: [audience.apply_values],
    types.CartUpdated: [audience.record_carts],
    types.InteractionTracked: [audience.record_interactions],
    types.SurveyCompleted: [audience.apply_survey],
    types.LoyaltyPointsEarned: [audience.apply_points],
}
