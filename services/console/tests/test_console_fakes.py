"""The fakes answer in the services' own response models, so the console's tests read
what the real services send (a changed model fails here, not in production)."""

from typing import Any

import httpx
import pytest
from pydantic import BaseModel, TypeAdapter

from rapport_campaign.audience.models import AudienceMemberPublic
from rapport_campaign.campaigns.models import (
    CampaignPublic,
    CampaignReport,
    ChannelAnalytics,
    MessagePreview,
)
from rapport_campaign.segments.models import MemberPage, SegmentPublic
from rapport_console import testing
from rapport_partner_share.ledger.models import DisclosurePage
from rapport_partner_share.partners.models import PartnerPublic
from rapport_profile.analytics.models import MetricsPublic
from rapport_profile.analytics.service import ForecastReply, TiersReply, TrendsReply
from rapport_profile.consents.models import ConsentReceipt
from rapport_profile.customers.models import CustomerDetail, CustomerPage
from rapport_profile.gdpr.models import ErasureStatus, ExportReply
from rapport_profile.overview.models import CustomerOverview
from rapport_profile.timeline.models import TimelinePage
from rapport_support.customers.models import SupportContext
from rapport_support.mentions.models import MentionDetail, MentionPublic, ReplyPublic
from rapport_support.shared import Page
from rapport_support.tickets.models import CommentPublic, TicketDetail

PARAMS = httpx.QueryParams({"by": "gender"})
CASES: list[tuple[Any, Any]] = [
    (CustomerDetail, testing.customer()),
    (ConsentReceipt, testing.consents()),
    (MetricsPublic, testing.metrics()),
    (
        TimelinePage,
        {
            "customer_id": testing.CUSTOMER_ID,
            "items": testing.timeline_items([]),
            "next_cursor": None,
        },
    ),
    (CustomerOverview, testing.overview([], 50)),
    (CustomerOverview, testing.overview(["order.completed"], 2)),
    (CustomerPage, testing.FakeServices().search(httpx.QueryParams({"q": "ada"}))),
    (AudienceMemberPublic, testing.audience()),
    (list[SegmentPublic], testing.segments()),
    (SupportContext, testing.support_context()),
    (DisclosurePage, testing.disclosures()),
    (TrendsReply, testing.trends(PARAMS)),
    (TiersReply, testing.tiers()),
    (ForecastReply, testing.forecast(PARAMS)),
    (ChannelAnalytics, testing.channels()),
    (ExportReply, testing.export()),
    (CampaignPublic, testing.campaign()),
    (TicketDetail, testing.ticket()),
    (CommentPublic, testing.comment("c-2", "Sorry", "support", public=False)),
    (MentionDetail, testing.mention()),
    (Page[MentionPublic], testing.FakeServices().world.mentions(httpx.QueryParams())),
    (ReplyPublic, testing.reply("We are on it", "support", 1)),
    (MessagePreview, testing.preview(testing.CAMPAIGN_ID, testing.CUSTOMER_ID)),
    (PartnerPublic, testing.partner()),
    (CampaignReport, testing.campaign_report()),
    (
        MemberPage,
        testing.FakeServices().answer(
            "campaign", f"/segments/{testing.SEGMENT_ID}/members", httpx.QueryParams()
        ),
    ),
]


def test_the_erasure_statuses_are_valid_replies() -> None:
    fakes = testing.FakeServices()
    ErasureStatus.model_validate(fakes.erase("profile", f"/customers/{testing.CUSTOMER_ID}"))
    ErasureStatus.model_validate(fakes.erasure(completed=True))


@pytest.mark.parametrize(("model", "payload"), CASES, ids=lambda v: getattr(v, "__name__", ""))
def test_each_fake_payload_is_a_valid_service_reply(model: Any, payload: Any) -> None:
    if isinstance(model, type) and issubclass(model, BaseModel):
        model.model_validate(payload)
    else:
        TypeAdapter(model).validate_python(payload)
