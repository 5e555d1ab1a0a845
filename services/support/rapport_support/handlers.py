"""Events support reacts to, by type: its projection of who customers are and what they own.

The frequent types take the run a fetch brought at once (`@batch`); merges and erasures
come one at a time.
"""

from rapport_events import types
from rapport_events.consumer import HandlerMap
from rapport_support import lifecycle
from rapport_support.customers import projection as customers
from rapport_support.products import projection as products

HANDLERS: HandlerMap = {
    types.CustomerRegistered: [customers.apply_registrations],
    types.CustomerUpdated: [customers.apply_customer_updates],
    types.ConsentGranted: [customers.apply_consents],
    types.ConsentRevoked: [customers.apply_consents],
    types.CustomerMerged: [lifecycle.apply_merge],
    types.CustomerErased: [lifecycle.apply_erasure],
    types.OrderCompleted: [products.record_orders],
    types.CustomerValueChanged: [customers.apply_values],
}
