"""Profile's HTTP routes: parse, call the service, shape the reply."""

from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Query, Request, status
from fastapi.responses import JSONResponse

from rapport_events.limits import CustomerIdPath
from rapport_profile import analytics, forecasts, gdpr, privacy_signals, service, timeline, tracking
from rapport_profile.deps import (
    HttpDep,
    SessionDep,
    SessionsDep,
    SettingsDep,
    WriteKeyDep,
    check_write_key,
    require_token,
)
from rapport_profile.models import (
    ConsentReceipt,
    ConsentUpdate,
    CustomerCreate,
    CustomerDetail,
    CustomerPage,
    CustomerPublic,
    CustomerUpdate,
    DisclosurePublic,
    ErasureStatus,
    ExportReply,
    MergePublic,
    MergeRequest,
    MetricsPublic,
    TimelinePage,
)

router = APIRouter(dependencies=[Depends(require_token)])

NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"description": "no such customer"}}
CONFLICT: dict[int | str, dict[str, Any]] = {
    409: {"description": "the customer was merged away, or the data conflicts"}
}


# --- customers -------------------------------------------------------------------


@router.post(
    "/customers",
    tags=["customers"],
    status_code=status.HTTP_201_CREATED,
    response_model=CustomerPublic,
    responses={
        409: {
            "description": "a customer with this e-mail or external id exists; its id is returned"
        },
        422: {"description": "invalid body, or an Idempotency-Key reused for another body"},
    },
)
async def create_customer(
    body: CustomerCreate,
    session: SessionDep,
    settings: SettingsDep,
    idempotency_key: Annotated[str | None, Header(max_length=255)] = None,
) -> CustomerPublic | JSONResponse:
    """Register a customer and publish customer.registered; a retried Idempotency-Key replays."""
    key = fingerprint = None
    if idempotency_key:
        key = f"POST /customers {idempotency_key}"
        fingerprint = service.request_hash(body.model_dump(mode="json"))
        earlier = await service.replay(session, key, fingerprint)
        if earlier is not None:
            return JSONResponse(earlier.body, status_code=earlier.status_code)
    customer = await service.register_customer(session, body, topic=settings.kafka.topic)
    reply = CustomerPublic.model_validate(customer)
    if key and fingerprint:
        service.remember(session, key, fingerprint, 201, reply.model_dump(mode="json"), customer.id)
    return reply


@router.get("/customers", tags=["customers"], response_model=CustomerPage)
async def search_customers(
    session: SessionDep,
    email: Annotated[str | None, Query(max_length=320)] = None,
    q: Annotated[str | None, Query(max_length=200, description="words of the name")] = None,
    phone: Annotated[
        str | None, Query(max_length=16, description="E.164, like +14155550100")
    ] = None,
    external_id: Annotated[
        str | None,
        Query(
            max_length=300, pattern=r"^[^:]{1,64}:.+$", description="`system:id`, like shop:c-1815"
        ),
    ] = None,
    country: Annotated[str | None, Query(min_length=2, max_length=2)] = None,
    segment: Annotated[str | None, Query(max_length=200, description="segment id or name")] = None,
    tier: Annotated[str | None, Query(description="platinum, gold, silver, bronze or none")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: Annotated[str | None, Query(max_length=500)] = None,
) -> CustomerPage:
    """Find customers by exact e-mail, phone or external id, words of the name, country,
    segment or tier."""
    if tier is not None and tier not in analytics.TIER_NAMES:
        raise analytics.UnknownTier(f"tier must be one of {', '.join(analytics.TIER_NAMES)}")
    found, next_cursor = await service.search_customers(
        session,
        email=email,
        phone=phone,
        external_id=external_id,
        text=q,
        country=country,
        segment=segment,
        tier=tier,
        limit=limit,
        cursor=cursor,
    )
    return CustomerPage(
        items=[CustomerPublic.model_validate(c) for c in found], next_cursor=next_cursor
    )


@router.get(
    "/customers/{customer_id}",
    tags=["customers"],
    response_model=CustomerDetail,
    responses=NOT_FOUND,
)
async def read_customer(customer_id: CustomerIdPath, session: SessionDep) -> CustomerDetail:
    """One customer by id, with custom traits and accounts (a merged one shows `merged_into`)."""
    return await service.customer_detail(session, customer_id)


@router.patch(
    "/customers/{customer_id}",
    tags=["customers"],
    response_model=CustomerPublic,
    responses={**NOT_FOUND, **CONFLICT},
)
async def update_customer(
    customer_id: CustomerIdPath, body: CustomerUpdate, session: SessionDep, settings: SettingsDep
) -> CustomerPublic:
    """Change some attributes and publish customer.updated with what changed."""
    customer = await service.update_customer(
        session, customer_id, body.changes(), topic=settings.kafka.topic
    )
    return CustomerPublic.model_validate(customer)


# --- consents ------------------------------------------------------------------------


@router.put(
    "/customers/{customer_id}/consents",
    tags=["consents"],
    response_model=ConsentReceipt,
    responses={**NOT_FOUND, **CONFLICT},
)
async def put_consent(
    customer_id: CustomerIdPath, body: ConsentUpdate, session: SessionDep, settings: SettingsDep
) -> ConsentReceipt:
    """Grant or revoke one consent; publishes consent.granted or consent.revoked."""
    await service.set_consent(session, customer_id, body, topic=settings.kafka.topic)
    await session.flush()
    return await service.consent_receipt(session, customer_id)


@router.get(
    "/customers/{customer_id}/consents",
    tags=["consents"],
    response_model=ConsentReceipt,
    responses=NOT_FOUND,
)
async def read_consents(customer_id: CustomerIdPath, session: SessionDep) -> ConsentReceipt:
    """The consent receipt: every consent and its full history."""
    return await service.consent_receipt(session, customer_id)


# --- identity resolution ---------------------------------------------------------------


@router.post(
    "/customers/{customer_id}/merge",
    tags=["identity"],
    response_model=MergePublic,
    responses={**NOT_FOUND, **CONFLICT},
)
async def merge_customer(
    customer_id: CustomerIdPath, body: MergeRequest, session: SessionDep, settings: SettingsDep
) -> MergePublic:
    """Fold a duplicate into this customer; publishes customer.merged."""
    merge = await service.merge_customers(
        session,
        customer_id,
        body.merged_customer_id,
        reason="manual",
        actor=body.actor,
        topic=settings.kafka.topic,
    )
    return MergePublic.model_validate(merge)


@router.post(
    "/customers/{customer_id}/unmerge",
    tags=["identity"],
    response_model=MergePublic,
    responses={**NOT_FOUND, **CONFLICT},
)
async def unmerge_customer(
    customer_id: CustomerIdPath, body: MergeRequest, session: SessionDep, settings: SettingsDep
) -> MergePublic:
    """Undo a wrong merge: the duplicate comes back with its own history and consents."""
    merge = await service.unmerge_customers(
        session, customer_id, body.merged_customer_id, actor=body.actor, topic=settings.kafka.topic
    )
    return MergePublic.model_validate(merge)


# --- what the log says -------------------------------------------------------------------


@router.get(
    "/customers/{customer_id}/timeline",
    tags=["activity"],
    response_model=TimelinePage,
    responses=NOT_FOUND,
)
async def read_timeline(
    customer_id: CustomerIdPath,
    session: SessionDep,
    type: Annotated[
        list[str] | None,
        Query(description="event types, like order.completed (repeat or comma-separate)"),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: Annotated[str | None, Query(max_length=500)] = None,
) -> TimelinePage:
    """Everything any service published about the customer, newest first."""
    return await timeline.page(session, customer_id, types=type or [], limit=limit, cursor=cursor)


@router.get(
    "/customers/{customer_id}/metrics",
    tags=["activity"],
    response_model=MetricsPublic,
    responses=NOT_FOUND,
)
async def read_metrics(customer_id: CustomerIdPath, session: SessionDep) -> MetricsPublic:
    """Orders, revenue, RFM scores, lifetime value and tier, by the one value method."""
    owner = await timeline.known_owner(session, customer_id)
    return await analytics.customer_metrics(session, owner)


@router.get(
    "/customers/{customer_id}/disclosures",
    tags=["privacy"],
    response_model=list[DisclosurePublic],
    responses=NOT_FOUND,
)
async def read_disclosures(
    customer_id: CustomerIdPath, session: SessionDep
) -> list[DisclosurePublic]:
    """Which partner saw what, when and why (from partner.data.disclosed)."""
    owner = await timeline.known_owner(session, customer_id)
    return [DisclosurePublic.model_validate(d) for d in await timeline.disclosures(session, owner)]


# --- GDPR ----------------------------------------------------------------------------------


@router.get("/customers/{customer_id}/export", tags=["privacy"], response_model=ExportReply)
async def export_customer(
    customer_id: CustomerIdPath,
    sessions: SessionsDep,
    settings: SettingsDep,
    http: HttpDep,
    scope: Annotated[str, Query(pattern="^(all|local)$")] = "all",
) -> ExportReply:
    """Everything held about the customer: profile's records and every other service's."""
    records = await gdpr.read_local_records(sessions, customer_id)
    reply = ExportReply(service="profile", customer_id=customer_id, records=records)
    if scope == "all":
        reply.services, reply.complete = await gdpr.gather_exports(http, settings, customer_id)
    return reply


@router.delete(
    "/customers/{customer_id}",
    tags=["customers"],
    response_model=ErasureStatus,
    responses={
        202: {"model": ErasureStatus, "description": "erasure still running; poll status_url"},
        **NOT_FOUND,
    },
)
async def erase_customer(
    customer_id: CustomerIdPath, sessions: SessionsDep, settings: SettingsDep, http: HttpDep
) -> JSONResponse:
    """Erase the customer everywhere (customer.erased); 200 once every service holds nothing."""
    erasure = await gdpr.erase(sessions, http, settings, customer_id)
    return _erasure_reply(erasure)


@router.get(
    "/customers/{customer_id}/erasure",
    tags=["privacy"],
    response_model=ErasureStatus,
    responses={202: {"model": ErasureStatus, "description": "still running"}, **NOT_FOUND},
)
async def read_erasure(
    customer_id: CustomerIdPath, sessions: SessionsDep, settings: SettingsDep, http: HttpDep
) -> JSONResponse:
    """Where an erasure stands in every service."""
    erasure = await gdpr.check(sessions, http, settings, customer_id)
    return _erasure_reply(erasure)


def _erasure_reply(erasure: ErasureStatus) -> JSONResponse:
    done = erasure.status == "completed"
    return JSONResponse(
        erasure.model_dump(mode="json"),
        status_code=status.HTTP_200_OK if done else status.HTTP_202_ACCEPTED,
        headers={} if done else {"Location": erasure.status_url},
    )


# --- analytics ------------------------------------------------------------------------------


@router.get("/analytics/trends", tags=["analytics"], response_model=analytics.TrendsReply)
async def read_trends(
    session: SessionDep,
    metric: analytics.Metric = "revenue",
    by: analytics.Dimension = "none",
    interval: analytics.Interval = "week",
    start: Annotated[date | None, Query(alias="from")] = None,
    end: Annotated[date | None, Query(alias="to")] = None,
) -> analytics.TrendsReply:
    """Revenue, orders, average order or new customers per period, by a demographic."""
    start, end = analytics.requested_range(start, end, interval)
    return await analytics.trends(
        session, metric=metric, by=by, interval=interval, start=start, end=end
    )


@router.get("/analytics/tiers", tags=["analytics"], response_model=analytics.TiersReply)
async def read_tiers(session: SessionDep) -> analytics.TiersReply:
    """Customers ranked by profitability into platinum, gold, silver, bronze (and none)."""
    return await analytics.tiers(session)


@router.get("/analytics/forecast", tags=["analytics"], response_model=analytics.ForecastReply)
async def read_forecast(
    request: Request,
    metric: analytics.Metric = "revenue",
    interval: analytics.Interval = "week",
    periods: Annotated[int, Query(ge=1, le=forecasts.MAX_HORIZON)] = 4,
    seasonal_periods: Annotated[int | None, Query(ge=2, le=52)] = None,
    start: Annotated[date | None, Query(alias="from")] = None,
    end: Annotated[date | None, Query(alias="to")] = None,
) -> analytics.ForecastReply:
    """Forecast the next periods (Holt-Winters, fitted ahead of time), with the backtest
    error (MAE, MAPE) and when the model was fitted."""
    analytics.requested_range(start, end, interval)  # a bad window is a 422 before any fit
    forecaster: forecasts.Forecaster = request.app.state.forecaster
    return await forecaster.forecast((metric, interval, seasonal_periods, start, end), periods)


# --- tracking (Segment HTTP Tracking API) -----------------------------------------------------

tracking_router = APIRouter(prefix="/v1", tags=["tracking"])
TRACKING_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {"description": "malformed JSON or message, or over the size limits"},
    401: {"description": "missing or unknown write key"},
    413: {"description": "the body is over the service's cap on every request (1 MiB)"},
}


async def _track(
    request: Request, kind: str | None, key: str | None, settings: SettingsDep, session: SessionDep
) -> dict[str, bool]:
    limit = tracking.MAX_BATCH_BYTES if kind is None else tracking.MAX_CALL_BYTES
    # The body is read whatever its content type: sendBeacon and analytics.js send text/plain.
    raw = await tracking.read_body(request.stream(), request.headers.get("content-encoding"), limit)
    payload = tracking.parse_json(raw)
    if key is None:
        check_write_key(settings, payload.get("writeKey"))
    messages = tracking.parse_messages(payload, kind)
    await tracking.ingest(
        session,
        messages,
        topic=settings.kafka.topic,
        currency=settings.default_currency,
        gpc=privacy_signals.header_says_gpc(request.headers.get("sec-gpc")),
        sharing_categories=settings.sharing_consent_categories,
    )
    return {"success": True}


# analytics.js posts to the one-letter paths; they are the same routes.
@tracking_router.post("/identify", responses=TRACKING_RESPONSES)
@tracking_router.post("/i", responses=TRACKING_RESPONSES, include_in_schema=False)
async def track_identify(
    request: Request, key: WriteKeyDep, settings: SettingsDep, session: SessionDep
) -> dict[str, bool]:
    """Segment identify: who the user is, with traits; links anonymous activity."""
    return await _track(request, "identify", key, settings, session)


@tracking_router.post("/track", responses=TRACKING_RESPONSES)
@tracking_router.post("/t", responses=TRACKING_RESPONSES, include_in_schema=False)
async def track_event(
    request: Request, key: WriteKeyDep, settings: SettingsDep, session: SessionDep
) -> dict[str, bool]:
    """Segment track: an action; e-commerce, survey and loyalty names map to domain events."""
    return await _track(request, "track", key, settings, session)


@tracking_router.post("/page", responses=TRACKING_RESPONSES)
@tracking_router.post("/p", responses=TRACKING_RESPONSES, include_in_schema=False)
async def track_page(
    request: Request, key: WriteKeyDep, settings: SettingsDep, session: SessionDep
) -> dict[str, bool]:
    """Segment page: a page view."""
    return await _track(request, "page", key, settings, session)


@tracking_router.post("/screen", responses=TRACKING_RESPONSES)
@tracking_router.post("/s", responses=TRACKING_RESPONSES, include_in_schema=False)
async def track_screen(
    request: Request, key: WriteKeyDep, settings: SettingsDep, session: SessionDep
) -> dict[str, bool]:
    """Segment screen: a mobile screen view."""
    return await _track(request, "screen", key, settings, session)


@tracking_router.post("/group", responses=TRACKING_RESPONSES)
@tracking_router.post("/g", responses=TRACKING_RESPONSES, include_in_schema=False)
async def track_group(
    request: Request, key: WriteKeyDep, settings: SettingsDep, session: SessionDep
) -> dict[str, bool]:
    """Segment group: the account (company) the user belongs to, with its traits."""
    return await _track(request, "group", key, settings, session)


@tracking_router.post("/alias", responses=TRACKING_RESPONSES)
@tracking_router.post("/a", responses=TRACKING_RESPONSES, include_in_schema=False)
async def track_alias(
    request: Request, key: WriteKeyDep, settings: SettingsDep, session: SessionDep
) -> dict[str, bool]:
    """Segment alias: `previousId` and `userId` are the same person."""
    return await _track(request, "alias", key, settings, session)


@tracking_router.post("/batch", responses=TRACKING_RESPONSES)
@tracking_router.post("/b", responses=TRACKING_RESPONSES, include_in_schema=False)
async def track_batch(
    request: Request, key: WriteKeyDep, settings: SettingsDep, session: SessionDep
) -> dict[str, bool]:
    """Segment batch: up to 500 KB of identify, track, page, screen, group and alias messages."""
    return await _track(request, None, key, settings, session)
