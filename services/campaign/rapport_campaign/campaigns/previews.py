"""A campaign's message as one customer would get it: rendered with what campaign knows
of them, the way the sender renders it, with nothing sent, tracked or stored."""

from typing import Any

from rapport_campaign.audience.models import AudienceMember
from rapport_campaign.campaigns import service
from rapport_campaign.campaigns.models import Campaign, MessagePreview
from rapport_campaign.errors import InvalidRequest, NotFound
from rapport_campaign.messaging import delivery, template_data
from rapport_campaign.messaging.service import Recommender, recommendation
from rapport_campaign.unit_of_work import CampaignUnitOfWork

# In a preview no link is signed: the call to action is the campaign's own link, and the
# unsubscribe link (made per message when sending) is a placeholder.
UNSUBSCRIBE_PLACEHOLDER = "[unsubscribe link]"


async def preview_message(
    uow: CampaignUnitOfWork, campaign_id: str, customer_id: str, variant: str | None = None
) -> MessagePreview:
    """One variant (the first unless named) of a campaign, rendered for one customer."""
    campaign = await service.get_campaign(uow, campaign_id)
    chosen = _variant(campaign, variant)
    owner = await uow.audience.resolve(customer_id)
    member = await uow.audience.get_member(owner) if owner else None
    if member is None:
        raise NotFound(f"no audience member {customer_id}")
    context = await _context(uow, campaign, member)
    try:
        rendered = delivery.render(chosen, context, track=str)
    except delivery.TemplateProblem as problem:
        raise InvalidRequest(f"template error in variant {problem}") from problem
    return MessagePreview(
        campaign_id=campaign.id,
        customer_id=member.customer_id,
        variant=chosen["name"],
        channel=campaign.channel,
        subject=rendered.subject,
        text=rendered.text,
        html=rendered.html,
    )


def _variant(campaign: Campaign, name: str | None) -> dict[str, Any]:
    for variant in campaign.variants:
        if name is None or variant["name"] == name:
            return variant
    raise NotFound(f"no variant {name} in campaign {campaign.id}")


async def _context(
    uow: CampaignUnitOfWork, campaign: Campaign, member: AudienceMember
) -> dict[str, Any]:
    recommended = await Recommender().recommend(uow.audience, member.customer_id)
    return {
        "customer": template_data.customer(member),
        "recommendation": recommendation(recommended),
        "offer_code": f"{campaign.offer_prefix}-PREVIEW" if campaign.offer_prefix else None,
        "cta_url": campaign.link,
        "unsubscribe_url": UNSUBSCRIBE_PLACEHOLDER,
        "campaign": template_data.record({"id": campaign.id, "name": campaign.name}, campaign.name),
        "cart": None,
        "order": await uow.audience.last_order(member.customer_id),
    }
