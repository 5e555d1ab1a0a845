"""What mentions learn from the log: when a customer claims a handle, its mentions not yet
linked join them, with the tickets they opened."""

from collections.abc import Mapping

from sqlmodel.ext.asyncio.session import AsyncSession

from rapport_events.types import TicketUpdated
from rapport_support.customers.models import HandleKey
from rapport_support.mentions import store
from rapport_support.mentions.models import SupportMention
from rapport_support.settings import Settings
from rapport_support.shared import publish
from rapport_support.tickets.models import SupportTicket
from rapport_support.tickets.store import SqlTicketStore


async def link_claimed_mentions(
    session: AsyncSession, settings: Settings, claims: Mapping[HandleKey, str]
) -> None:
    """Mentions of a claimed handle join its first claimant, with the tickets they opened."""
    if not claims:
        return
    mentions = await store.unlinked_mentions(session, list(claims))
    if not mentions:
        return
    claimant = {m["id"]: claims[(m["platform"], m["handle_key"])] for m in mentions}
    owner_of_subject = {m["subject_id"]: claimant[m["id"]] for m in mentions}
    await store.relink(session, SupportMention, claimant, subject=True)
    tickets = await SqlTicketStore(session).tickets_filed_under(owner_of_subject)
    await store.relink(
        session, SupportTicket, {t["id"]: owner_of_subject[t["customer_id"]] for t in tickets}
    )
    order = {key: position for position, key in enumerate(claims)}
    subject_key = {
        mention["subject_id"]: order[(mention["platform"], mention["handle_key"])]
        for mention in mentions
    }
    # In the order the handles were claimed, as one event at a time would have written them.
    for ticket in sorted(tickets, key=lambda t: subject_key[t["customer_id"]]):
        filed_under, owner = ticket["customer_id"], owner_of_subject[ticket["customer_id"]]
        # ticket.opened went out under the handle's social:* id; this puts the ticket on
        # the customer's own timeline.
        publish(
            session,
            settings,
            TicketUpdated(
                customer_id=owner,
                ticket_id=ticket["id"],
                status=ticket["status"],
                changes={"customer_id": owner, "previous_customer_id": filed_under},
            ),
        )
