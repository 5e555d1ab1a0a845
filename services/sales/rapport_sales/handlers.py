"""Events sales reacts to, by type: the frequent ones a run at a time (`@batch`)."""

from rapport_events import types
from rapport_events.consumer import HandlerMap
from rapport_sales import lifecycle
from rapport_sales.accounts import projection as accounts
from rapport_sales.customers import projection as customers

HANDLERS: HandlerMap = {
    types.CustomerRegistered: [customers.apply_customer_changes],
    types.CustomerUpdated: [customers.apply_customer_changes],
    types.CampaignMessageClicked: [customers.record_clicks],
    types.AccountJoined: [accounts.apply_account_joins],
    types.CustomerMerged: [lifecycle.apply_merge],
    types.CustomerErased: [lifecycle.apply_erasure],
}
