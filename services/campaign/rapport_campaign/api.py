"""Campaign's HTTP routes: parse, call the service, shape the reply."""

import html
from typing import Annotated, Any

from fastapi import (
    APIRouter,
    BackgroundTasks,
    Body,
    Depends,
    HTTPException,
    Query,
    Response,
    status,
)
from fastapi.responses import HTMLResponse, RedirectResponse

from rapport_campaign import marketing, previews, service
from rapport_campaign.deps import (
    SessionDep,
    SettingsDep,
    TokensDep,
    WorkerDep,
    WriteSessionDep,
    require_token,
)
from rapport_campaign.models import (
    AudienceMemberPublic,
    CampaignCreate,
    CampaignPublic,
    CampaignReport,
    ChannelAnalytics,
    CustomerExport,
    JourneyCreate,
    JourneyUpdate,
    LaunchRequest,
    MemberPage,
    MemberPublic,
    MessagePreview,
    PreviewPublic,
    Segment,
    SegmentCreate,
    SegmentPreview,
    SegmentPublic,
    SegmentUpdate,
)
from rapport_campaign.tracking import ExpiredToken, InvalidToken
from rapport_events.limits import CustomerIdPath, PathId

router = APIRouter(dependencies=[Depends(require_token)])
# Links inside messages: the signed token is the credential.
public = APIRouter(tags=["tracking"])

NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"description": "no such resource"}}
INVALID: dict[int | str, dict[str, Any]] = {422: {"description": "the input cannot be used"}}
CONFLICT: dict[int | str, dict[str, Any]] = {409: {"description": "not in a state that allows it"}}
# A transparent 1x1 GIF.
PIXEL = bytes.fromhex(
    "47494638396101000100800000000000ffffff21f90401000000002c00000000010001000002024401003b"
)

RULE_EXAMPLES = {
    "shoe buyers in France": {
        "value": {
            "name": "French shoe buyers",
            "rule": {
                "all": [
                    {"attribute": "country", "op": "eq", "value": "FR"},
                    {
                        "event": "order.completed",
                        "at_least": 2,
                        "within_days": 90,
                        "where": [{"property": "category", "op": "eq", "value": "shoes"}],
                    },
                ]
            },
        }
    },
    "gold customers gone quiet": {
        "value": {
            "name": "Gold, quiet for 60 days",
            "rule": {
                "all": [
                    {"metric": "tier", "op": "gte", "value": "gold"},
                    {"metric": "recency_days", "op": "gt", "value": 60},
                    {"consent": "email"},
                ]
            },
        }
    },
    "a micro-market of two": {
        "value": {
            "name": "Two VIPs",
            "rule": {
                "attribute": "email",
                "op": "in",
                "value": ["ada@example.com", "alan@example.com"],
            },
        }
    },
}


def _segment(segment: Segment, count: int) -> SegmentPublic:
    return SegmentPublic.model_validate(segment).model_copy(update={"member_count": count})


# --- audience --------------------------------------------------------------------------------


@router.get(
    "/audience/{customer_id}",
    tags=["audience"],
    response_model=AudienceMemberPublic,
    responses=NOT_FOUND,
)
async def read_audience_member(
    customer_id: CustomerIdPath, session: SessionDep
) -> AudienceMemberPublic:
    """One customer as campaigns see them, with metrics and segments."""
    member, segments = await service.get_member(session, customer_id)
    public_member = AudienceMemberPublic.model_validate(member)
    return public_member.model_copy(update={"segments": segments})


@router.get("/customers/{customer_id}/export", tags=["privacy"], response_model=CustomerExport)
async def export_customer(customer_id: CustomerIdPath, session: SessionDep) -> CustomerExport:
    """Everything campaign holds about the customer (empty lists when nothing)."""
    records = await service.export_customer(session, customer_id)
    return CustomerExport(service="campaign", customer_id=customer_id, records=records)


# --- segments --------------------------------------------------------------------------------


@router.post(
    "/segments",
    tags=["segments"],
    status_code=status.HTTP_201_CREATED,
    response_model=SegmentPublic,
    responses=INVALID,
)
async def create_segment(
    body: Annotated[SegmentCreate, Body(openapi_examples=RULE_EXAMPLES)],
    session: SessionDep,
    settings: SettingsDep,
) -> SegmentPublic:
    """Create a segment; members are computed now and kept current as events arrive."""
    segment, count = await service.create_segment(session, body, settings)
    return _segment(segment, count)


@router.post(
    "/segments/preview", tags=["segments"], response_model=PreviewPublic, responses=INVALID
)
async def preview_segment(body: SegmentPreview, session: SessionDep) -> PreviewPublic:
    """Count who a rule matches now, without saving anything."""
    count, sample, timed = await service.preview_segment(session, body.rule)
    return PreviewPublic(count=count, sample=sample, time_dependent=timed)


@router.get("/segments", tags=["segments"], response_model=list[SegmentPublic])
async def list_segments(session: SessionDep) -> list[SegmentPublic]:
    """Every segment with its member count."""
    return [_segment(s, n) for s, n in await service.list_segments(session)]


@router.get(
    "/segments/{segment_id}", tags=["segments"], response_model=SegmentPublic, responses=NOT_FOUND
)
async def read_segment(segment_id: PathId, session: SessionDep) -> SegmentPublic:
    """One segment with its member count."""
    return _segment(*await service.get_segment(session, segment_id))


@router.patch(
    "/segments/{segment_id}", tags=["segments"], response_model=SegmentPublic, responses=NOT_FOUND
)
async def update_segment(
    segment_id: PathId, body: SegmentUpdate, session: SessionDep
) -> SegmentPublic:
    """Rename a segment or change its description (a rule never changes)."""
    return _segment(*await service.update_segment(session, segment_id, body))


@router.delete(
    "/segments/{segment_id}",
    tags=["segments"],
    status_code=status.HTTP_204_NO_CONTENT,
    responses={**NOT_FOUND, **CONFLICT},
)
async def delete_segment(
    segment_id: PathId, session: SessionDep, settings: SettingsDep
) -> Response:
    """Delete a segment nothing else uses; its members exit."""
    await service.delete_segment(session, segment_id, settings)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get(
    "/segments/{segment_id}/members",
    tags=["segments"],
    response_model=MemberPage,
    responses=NOT_FOUND,
)
async def segment_members(
    segment_id: PathId,
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: Annotated[str | None, Query(max_length=64)] = None,
) -> MemberPage:
    """The segment's members in pages, with the total count."""
    count, rows, next_cursor = await service.member_page(
        session, segment_id, cursor=cursor, limit=limit
    )
    return MemberPage(
        segment_id=segment_id,
        count=count,
        members=[MemberPublic(customer_id=r.customer_id, entered_at=r.entered_at) for r in rows],
        next_cursor=next_cursor,
    )


# --- campaigns -------------------------------------------------------------------------------


@router.post(
    "/campaigns",
    tags=["campaigns"],
    status_code=status.HTTP_201_CREATED,
    response_model=CampaignPublic,
    responses=INVALID,
)
async def create_campaign(body: CampaignCreate, session: SessionDep) -> CampaignPublic:
    """Create a campaign (a draft) to a segment or a list of customers."""
    return CampaignPublic.model_validate(await marketing.create_campaign(session, body))


@router.get("/campaigns", tags=["campaigns"], response_model=list[CampaignPublic])
async def list_campaigns(session: SessionDep) -> list[CampaignPublic]:
    """Every campaign."""
    campaigns = await marketing.list_campaigns(session, "broadcast")
    return [CampaignPublic.model_validate(c) for c in campaigns]


@router.get(
    "/campaigns/{campaign_id}",
    tags=["campaigns"],
    response_model=CampaignPublic,
    responses=NOT_FOUND,
)
async def read_campaign(campaign_id: PathId, session: SessionDep) -> CampaignPublic:
    """One campaign."""
    return CampaignPublic.model_validate(await marketing.get_campaign(session, campaign_id))


@router.post(
    "/campaigns/{campaign_id}/launch",
    tags=["campaigns"],
    status_code=status.HTTP_202_ACCEPTED,
    response_model=CampaignPublic,
    responses={**NOT_FOUND, **CONFLICT},
)
async def launch_campaign(
    campaign_id: PathId,
    session: SessionDep,
    worker: WorkerDep,
    background: BackgroundTasks,
    body: LaunchRequest | None = None,
) -> CampaignPublic:
    """Send now (or schedule with `at`); consent and caps are checked as each message goes."""
    campaign = await marketing.launch_campaign(session, campaign_id, body.at if body else None)
    # After the commit, so the sender finds the new messages.
    background.add_task(worker.wake)
    return CampaignPublic.model_validate(campaign)


@router.get(
    "/campaigns/{campaign_id}/preview",
    tags=["campaigns"],
    response_model=MessagePreview,
    responses={**NOT_FOUND, **INVALID},
)
async def preview_message(
    campaign_id: PathId,
    session: SessionDep,
    customer_id: Annotated[str, Query(min_length=1, max_length=64)],
    variant: Annotated[str | None, Query(min_length=1, max_length=64)] = None,
) -> MessagePreview:
    """A variant's subject, text and HTML as one customer would get them; nothing is sent."""
    return await previews.preview_message(session, campaign_id, customer_id, variant)


@router.post(
    "/campaigns/{campaign_id}/cancel",
    tags=["campaigns"],
    response_model=CampaignPublic,
    responses={**NOT_FOUND, **CONFLICT},
)
async def cancel_campaign(campaign_id: PathId, session: SessionDep) -> CampaignPublic:
    """Cancel a campaign; messages not yet sent are dropped."""
    return CampaignPublic.model_validate(await marketing.cancel_campaign(session, campaign_id))


@router.get(
    "/campaigns/{campaign_id}/report",
    tags=["campaigns"],
    response_model=CampaignReport,
    responses=NOT_FOUND,
)
async def campaign_report(
    campaign_id: PathId, session: SessionDep, settings: SettingsDep
) -> CampaignReport:
    """Targeted, suppressed, sent, delivered, opened, clicked, converted, revenue, per variant."""
    return await marketing.campaign_report(session, campaign_id, settings)


# --- journeys --------------------------------------------------------------------------------


@router.post(
    "/journeys",
    tags=["journeys"],
    status_code=status.HTTP_201_CREATED,
    response_model=CampaignPublic,
    responses=INVALID,
)
async def create_journey(body: JourneyCreate, session: SessionDep) -> CampaignPublic:
    """Create a triggered journey: welcome, abandoned cart or re-engagement."""
    return CampaignPublic.model_validate(await marketing.create_journey(session, body))


@router.get("/journeys", tags=["journeys"], response_model=list[CampaignPublic])
async def list_journeys(session: SessionDep) -> list[CampaignPublic]:
    """Every journey."""
    journeys = await marketing.list_campaigns(session, "journey")
    return [CampaignPublic.model_validate(j) for j in journeys]


@router.get(
    "/journeys/{journey_id}", tags=["journeys"], response_model=CampaignPublic, responses=NOT_FOUND
)
async def read_journey(journey_id: PathId, session: SessionDep) -> CampaignPublic:
    """One journey."""
    return CampaignPublic.model_validate(
        await marketing.get_campaign(session, journey_id, "journey")
    )


@router.patch(
    "/journeys/{journey_id}", tags=["journeys"], response_model=CampaignPublic, responses=NOT_FOUND
)
async def update_journey(
    journey_id: PathId, body: JourneyUpdate, session: SessionDep
) -> CampaignPublic:
    """Pause or resume a journey."""
    journey = await marketing.set_journey_active(session, journey_id, body.active)
    return CampaignPublic.model_validate(journey)


@router.get(
    "/journeys/{journey_id}/report",
    tags=["journeys"],
    response_model=CampaignReport,
    responses=NOT_FOUND,
)
async def journey_report(
    journey_id: PathId, session: SessionDep, settings: SettingsDep
) -> CampaignReport:
    """The journey's funnel, like a campaign's."""
    await marketing.get_campaign(session, journey_id, "journey")
    return await marketing.campaign_report(session, journey_id, settings)


# --- analytics -------------------------------------------------------------------------------


@router.get("/analytics/channels", tags=["analytics"], response_model=ChannelAnalytics)
async def channel_analytics(session: SessionDep) -> ChannelAnalytics:
    """Customers, revenue and conversion per acquisition channel, campaign and message channel."""
    return await marketing.channel_analytics(session)


# --- tracking (public) ---------------------------------------------------------------------------


# A link's token: 404 when forged, altered or naming what campaign never sent; 410 when
# genuine but older than CAMPAIGN_LINK_TOKEN_MAX_AGE_DAYS.
LINK_REFUSED: dict[int | str, dict[str, Any]] = {
    404: {"description": "not a link campaign sent (forged, altered or unknown target)"},
    410: {"description": "a genuine link, expired (older than the links' maximum age)"},
}


def _invalid_link(error: InvalidToken) -> HTTPException:
    if isinstance(error, ExpiredToken):
        return HTTPException(status.HTTP_410_GONE, str(error))
    return HTTPException(status.HTTP_404_NOT_FOUND, str(error))


@public.get(
    "/t/{token}",
    response_class=RedirectResponse,
    status_code=status.HTTP_302_FOUND,
    responses={302: {"description": "to the link's target, with UTM parameters"}, **LINK_REFUSED},
)
async def click(
    token: str, session: WriteSessionDep, settings: SettingsDep, tokens: TokensDep
) -> RedirectResponse:
    """A click in a message: recorded, then redirected to the signed target."""
    try:
        target = tokens.click(token)
    except InvalidToken as error:
        raise _invalid_link(error) from error
    url = await marketing.record_click(session, target.message_id, target.url, settings)
    if url is None:
        raise _invalid_link(InvalidToken("this link does not belong to a message campaign sent"))
    return RedirectResponse(url, status_code=status.HTTP_302_FOUND)


@public.get(
    "/o/{token}",
    response_class=Response,
    responses={200: {"content": {"image/gif": {}}}, **LINK_REFUSED},
)
async def open_pixel(
    token: str, session: WriteSessionDep, settings: SettingsDep, tokens: TokensDep
) -> Response:
    """The open pixel of an e-mail."""
    try:
        message_id = tokens.open(token)
    except InvalidToken as error:
        raise _invalid_link(error) from error
    await marketing.record_open(session, message_id, settings)
    return Response(PIXEL, media_type="image/gif", headers={"Cache-Control": "no-store"})


@public.get("/u/{token}", response_class=HTMLResponse, responses=LINK_REFUSED)
async def unsubscribe_link(
    token: str, session: WriteSessionDep, settings: SettingsDep, tokens: TokensDep
) -> HTMLResponse:
    """Unsubscribe from a channel by following the link: revokes its consent."""
    return await _unsubscribe(token, session, settings, tokens)


@public.post("/u/{token}", response_class=HTMLResponse, responses=LINK_REFUSED)
async def unsubscribe_one_click(
    token: str, session: SessionDep, settings: SettingsDep, tokens: TokensDep
) -> HTMLResponse:
    """One-click unsubscribe (RFC 8058 `List-Unsubscribe-Post`): revokes the channel's consent."""
    return await _unsubscribe(token, session, settings, tokens)


async def _unsubscribe(
    token: str, session: SessionDep, settings: SettingsDep, tokens: TokensDep
) -> HTMLResponse:
    try:
        target = tokens.unsubscribe(token)
    except InvalidToken as error:
        raise _invalid_link(error) from error
    await marketing.unsubscribe(
        session, target.customer_id, target.channel, target.message_id, settings
    )
    channel = html.escape(target.channel)
    return HTMLResponse(
        "<!doctype html><title>Unsubscribed</title>"
        f"<p>You will no longer receive marketing messages by {channel}.</p>"
    )
