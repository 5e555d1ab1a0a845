"""Sales routes: thin — parse, call the domain module, shape the reply."""

import asyncio
from datetime import date, datetime
from pathlib import Path
from typing import Annotated, Any

import httpx
from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response, status
from fastapi.responses import FileResponse

from rapport_events.base import utcnow
from rapport_events.limits import CustomerIdPath, PathId
from rapport_sales import (
    accounts,
    activities,
    documents,
    lifecycle,
    opportunities,
    reports,
    timeline,
)
from rapport_sales.deps import Cursor, Limit, ProfileDep, SessionDep, SettingsDep, require_token
from rapport_sales.errors import CONFLICT, REFERENCE_NOT_FOUND, UNSUPPORTED_TYPE, InvalidRequest
from rapport_sales.paging import Page
from rapport_sales.schemas import (
    AccountCreate,
    AccountPublic,
    AccountTimeline,
    AccountUpdate,
    ActivityCreate,
    ActivityPublic,
    ContactLink,
    CustomerExport,
    MeetingCreate,
    OpportunityCreate,
    OpportunityLose,
    OpportunityPublic,
    OpportunityUpdate,
    OpportunityWin,
    PipelineCreate,
    PipelinePublic,
    Status,
    TaskCreate,
    TaskUpdate,
)

router = APIRouter(dependencies=[Depends(require_token)])
Owner = Annotated[str | None, Query(max_length=128)]


# --- accounts --------------------------------------------------------------------------------


@router.post("/accounts", status_code=201, tags=["accounts"])
async def create_account(
    body: AccountCreate, session: SessionDep, settings: SettingsDep
) -> AccountPublic:
    """Open an account (a company) with its domain, industry, size and owner."""
    return await accounts.create_account(session, body, settings.kafka.topic)


@router.get("/accounts", tags=["accounts"])
async def list_accounts(
    session: SessionDep,
    owner: Owner = None,
    q: Annotated[str | None, Query(max_length=200, description="in the name or domain")] = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> Page[AccountPublic]:
    """Accounts newest first, by owner or by a piece of the name or domain."""
    return await accounts.list_accounts(session, owner, q, limit, cursor)


@router.get("/accounts/{account_id}", tags=["accounts"])
async def read_account(account_id: PathId, session: SessionDep) -> AccountPublic:
    """The account and its contacts."""
    return await accounts.account_view(session, await accounts.get_account(session, account_id))


@router.patch("/accounts/{account_id}", tags=["accounts"])
async def update_account(
    account_id: PathId, body: AccountUpdate, session: SessionDep
) -> AccountPublic:
    """Change the account's name, domain, industry, size or owner."""
    return await accounts.update_account(session, account_id, body)


@router.put("/accounts/{account_id}/contacts/{customer_id}", tags=["accounts"])
async def link_contact(
    account_id: PathId,
    customer_id: CustomerIdPath,
    session: SessionDep,
    settings: SettingsDep,
    body: ContactLink | None = None,
) -> AccountPublic:
    """Make a customer (known to profile) a contact of the account, with a role."""
    role = body.role if body else None
    return await accounts.link_contact(session, account_id, customer_id, role, settings.kafka.topic)


@router.delete("/accounts/{account_id}/contacts/{customer_id}", status_code=204, tags=["accounts"])
async def unlink_contact(
    account_id: PathId, customer_id: CustomerIdPath, session: SessionDep
) -> Response:
    """The customer is no longer a contact of the account."""
    await accounts.unlink_contact(session, account_id, customer_id)
    return Response(status_code=204)


@router.get("/accounts/{account_id}/activities", tags=["accounts", "activities"])
async def account_activities(
    account_id: PathId,
    session: SessionDep,
    kind: Annotated[str | None, Query(max_length=16)] = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> Page[ActivityPublic]:
    """The account's activities and its contacts', newest first."""
    return await activities.list_activities(
        session, account_id=account_id, customer_id=None, kind=kind, limit=limit, cursor=cursor
    )


@router.get("/accounts/{account_id}/timeline", tags=["accounts"])
async def account_timeline(
    account_id: PathId, session: SessionDep, profile: ProfileDep, limit: Limit = 50
) -> AccountTimeline:
    """Everything about the account: its activity, its deals' stages and its contacts'
    timelines in profile, newest first (`complete` is false when profile did not answer)."""
    return await timeline.account_timeline(session, profile, account_id, limit)


# --- pipelines and opportunities -------------------------------------------------------------


@router.post("/pipelines", status_code=201, tags=["pipelines"], responses=CONFLICT)
async def create_pipeline(body: PipelineCreate, session: SessionDep) -> PipelinePublic:
    """A pipeline with ordered stages and a win probability per stage."""
    return await opportunities.create_pipeline(session, body)


@router.get("/pipelines", tags=["pipelines"])
async def list_pipelines(session: SessionDep) -> list[PipelinePublic]:
    """Every pipeline with its stages (`default` is there from the start)."""
    return await opportunities.list_pipelines(session)


@router.get("/pipelines/{pipeline_id}", tags=["pipelines"])
async def read_pipeline(pipeline_id: PathId, session: SessionDep) -> PipelinePublic:
    """A pipeline and its ordered stages."""
    return await opportunities.pipeline_view(session, pipeline_id)


@router.post(
    "/opportunities", status_code=201, tags=["opportunities"], responses=REFERENCE_NOT_FOUND
)
async def create_opportunity(
    body: OpportunityCreate, session: SessionDep, settings: SettingsDep
) -> OpportunityPublic:
    """Open an opportunity; without a `source`, the primary contact's attribution is used."""
    return await opportunities.create_opportunity(
        session, body, settings.kafka.topic, settings.default_currency
    )


@router.get("/opportunities", tags=["opportunities"])
async def list_opportunities(
    session: SessionDep,
    opportunity_status: Annotated[Status | None, Query(alias="status")] = None,
    owner: Owner = None,
    account_id: Annotated[str | None, Query(max_length=64)] = None,
    pipeline_id: Annotated[str | None, Query(max_length=64)] = None,
    stage: Annotated[str | None, Query(max_length=64)] = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> Page[OpportunityPublic]:
    """Opportunities newest first, by status, owner, account, pipeline or stage."""
    return await opportunities.list_opportunities(
        session,
        status=opportunity_status,
        owner=owner,
        account_id=account_id,
        pipeline_id=pipeline_id,
        stage=stage,
        limit=limit,
        cursor=cursor,
    )


@router.get("/opportunities/{opportunity_id}", tags=["opportunities"])
async def read_opportunity(opportunity_id: PathId, session: SessionDep) -> OpportunityPublic:
    """The opportunity, its contacts and its stage history."""
    found = await opportunities.get_opportunity(session, opportunity_id)
    return await opportunities.opportunity_view(session, found)


@router.patch("/opportunities/{opportunity_id}", tags=["opportunities"], responses=CONFLICT)
async def update_opportunity(
    opportunity_id: PathId, body: OpportunityUpdate, session: SessionDep, settings: SettingsDep
) -> OpportunityPublic:
    """Change an open opportunity; a new `stage` publishes opportunity.stage.changed."""
    return await opportunities.update_opportunity(
        session, opportunity_id, body, settings.kafka.topic
    )


@router.post("/opportunities/{opportunity_id}/win", tags=["opportunities"], responses=CONFLICT)
async def win_opportunity(
    opportunity_id: PathId,
    session: SessionDep,
    settings: SettingsDep,
    body: OpportunityWin | None = None,
) -> OpportunityPublic:
    """Close as won; by default the deal is recorded as an order of its primary contact,
    which reaches profile's metrics and campaign's attribution."""
    return await opportunities.win_opportunity(
        session, opportunity_id, body or OpportunityWin(), settings.kafka.topic
    )


@router.post("/opportunities/{opportunity_id}/lose", tags=["opportunities"], responses=CONFLICT)
async def lose_opportunity(
    opportunity_id: PathId, body: OpportunityLose, session: SessionDep, settings: SettingsDep
) -> OpportunityPublic:
    """Close as lost, with the reason."""
    return await opportunities.lose_opportunity(session, opportunity_id, body, settings.kafka.topic)


# --- reports ---------------------------------------------------------------------------------


@router.get("/reports/pipeline", tags=["reports"], responses=REFERENCE_NOT_FOUND)
async def pipeline_report(
    session: SessionDep,
    pipeline_id: Annotated[str, Query(max_length=64)] = opportunities.DEFAULT_PIPELINE,
    owner: Owner = None,
) -> reports.PipelineReport:
    """Open deals per stage and per owner: count, amount, and amount × stage probability."""
    await opportunities.stages_of(session, pipeline_id)
    return await reports.pipeline_report(session, pipeline_id, owner)


@router.get("/reports/forecast", tags=["reports"])
async def forecast_report(
    session: SessionDep,
    profile: ProfileDep,
    start: Annotated[date | None, Query(alias="from")] = None,
    months: Annotated[int, Query(ge=1, le=24)] = 6,
    owner: Owner = None,
) -> reports.ForecastReport:
    """The weighted pipeline per month of expected close, next to profile's forecast of
    revenue from the order history."""
    report = await reports.weighted_forecast(session, start or utcnow().date(), months, owner)
    try:
        report.historical = await profile.revenue_forecast(months)
    except (httpx.HTTPError, ValueError) as error:
        report.historical_error = str(error) or type(error).__name__
    return report


@router.get("/reports/forecast/backtest", tags=["reports"])
async def forecast_backtest(
    session: SessionDep,
    settings: SettingsDep,
    as_of: datetime,
    months: Annotated[int, Query(ge=1, le=24)] = 3,
    currency: Annotated[str | None, Query(pattern=r"^[A-Z]{3}$")] = None,
) -> reports.Backtest:
    """The weighted forecast as it stood at `as_of` against the amounts won after it."""
    if as_of.tzinfo is None:
        raise InvalidRequest("as_of needs a time zone")
    return await reports.backtest(session, as_of, months, currency or settings.default_currency)


@router.get("/reports/win-rate", tags=["reports"])
async def win_rate_report(
    session: SessionDep,
    start: Annotated[datetime | None, Query(alias="from")] = None,
    end: Annotated[datetime | None, Query(alias="to")] = None,
    owner: Owner = None,
) -> reports.WinRateReport:
    """Won / (won + lost) and the average days from open to close, of deals closed in
    [from, to), in total and per owner."""
    return await reports.win_rate(session, start, end, owner)


# --- activities ------------------------------------------------------------------------------


@router.post("/activities", status_code=201, tags=["activities"], responses=REFERENCE_NOT_FOUND)
async def log_activity(
    body: ActivityCreate, session: SessionDep, settings: SettingsDep
) -> ActivityPublic:
    """Log a call or a note about an account or contacts."""
    return await activities.log_activity(session, body, settings.kafka.topic)


@router.get("/activities", tags=["activities"])
async def list_activities(
    session: SessionDep,
    customer_id: Annotated[str | None, Query(max_length=64)] = None,
    kind: Annotated[str | None, Query(max_length=16)] = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> Page[ActivityPublic]:
    """Activities newest first, of a contact or of a kind."""
    return await activities.list_activities(
        session, account_id=None, customer_id=customer_id, kind=kind, limit=limit, cursor=cursor
    )


@router.post("/tasks", status_code=201, tags=["activities"], responses=REFERENCE_NOT_FOUND)
async def create_task(
    body: TaskCreate, session: SessionDep, settings: SettingsDep
) -> ActivityPublic:
    """A task for an owner, with a due time."""
    return await activities.create_task(session, body, settings.kafka.topic)


@router.get("/tasks/overdue", tags=["activities"])
async def overdue_tasks(
    session: SessionDep, owner: Owner = None, limit: Limit = 100
) -> list[ActivityPublic]:
    """Tasks past due and not done, oldest due first (for one owner, or everyone)."""
    return await activities.overdue_tasks(session, owner, utcnow(), limit)


@router.patch("/tasks/{task_id}", tags=["activities"])
async def update_task(task_id: PathId, body: TaskUpdate, session: SessionDep) -> ActivityPublic:
    """Mark a task done (or not), or move its due time."""
    return await activities.update_task(session, task_id, body)


@router.post("/meetings", status_code=201, tags=["activities"], responses=REFERENCE_NOT_FOUND)
async def create_meeting(
    body: MeetingCreate, session: SessionDep, settings: SettingsDep
) -> ActivityPublic:
    """A meeting; attendees who are known customers are linked as its contacts."""
    return await activities.create_meeting(session, body, settings.kafka.topic)


@router.get(
    "/meetings/{meeting_id}.ics",
    tags=["activities"],
    response_class=Response,
    responses={200: {"content": {"text/calendar": {}}, "description": "RFC 5545 calendar"}},
)
async def meeting_calendar(meeting_id: PathId, session: SessionDep) -> Response:
    """The meeting as an iCalendar file (RFC 5545), for any calendar application."""
    meeting = await activities.get_activity(session, meeting_id, "meeting")
    return Response(
        activities.meeting_ics(meeting),
        media_type="text/calendar; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{meeting.id}.ics"'},
    )


RAW_DOCUMENT = {
    "requestBody": {
        "required": True,
        "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
    }
}
RAW_EMAIL = {
    "requestBody": {
        "required": True,
        "content": {"message/rfc822": {"schema": {"type": "string", "format": "binary"}}},
    }
}


@router.post(
    "/emails",
    status_code=201,
    tags=["activities"],
    openapi_extra=RAW_EMAIL,
    responses={**REFERENCE_NOT_FOUND, **UNSUPPORTED_TYPE},
)
async def log_email(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    account_id: Annotated[str | None, Query(max_length=64)] = None,
    owner: Owner = None,
) -> ActivityPublic:
    """Log an e-mail posted raw (RFC 5322, `Content-Type: message/rfc822`); its addresses
    link it to contacts, and to the account of their domain unless `account_id` is given."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind != "message/rfc822":
        raise HTTPException(415, "post the e-mail as message/rfc822")
    raw = await _bounded_body(request, settings.max_email_bytes)
    return await activities.log_email(session, raw, account_id, owner, settings.kafka.topic)


async def _bounded_body(request: Request, limit: int) -> bytes:
    received = bytearray()
    async for chunk in request.stream():
        received += chunk
        if len(received) > limit:
            raise HTTPException(
                status.HTTP_413_CONTENT_TOO_LARGE, f"an e-mail is at most {limit} bytes"
            )
    return bytes(received)


@router.post(
    "/documents",
    status_code=201,
    tags=["activities"],
    openapi_extra=RAW_DOCUMENT,
    responses={**REFERENCE_NOT_FOUND, **UNSUPPORTED_TYPE},
)
async def attach_document(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    filename: Annotated[str, Query(min_length=1, max_length=255)],
    account_id: Annotated[str | None, Query(max_length=64)] = None,
    customer_id: Annotated[list[str] | None, Query(max_length=50)] = None,
    owner: Owner = None,
) -> ActivityPublic:
    """Attach a document (the request body, with its `Content-Type`) to an account or
    contacts; the allowed types and the size limit are settings."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind not in settings.document_types:
        allowed = ", ".join(settings.document_types)
        raise HTTPException(415, f"{kind or 'no content type'} is not one of {allowed}")
    data = await _bounded_body(request, settings.max_document_bytes)
    return await documents.attach(
        session,
        Path(settings.documents_dir),
        data,
        filename=filename,
        content_type=kind,
        allowed=settings.document_types,
        account_id=account_id,
        customer_ids=list(dict.fromkeys(customer_id or [])),
        owner=owner,
        topic=settings.kafka.topic,
    )


@router.get(
    "/documents/{document_id}",
    tags=["activities"],
    response_class=Response,
    responses={200: {"content": {"application/octet-stream": {}}, "description": "the file"}},
)
async def download_document(
    document_id: PathId, session: SessionDep, settings: SettingsDep
) -> Response:
    """The document's bytes, as attached."""
    document = await documents.get_document(session, document_id)
    path = Path(settings.documents_dir) / document.id
    if not await asyncio.to_thread(path.is_file):
        raise HTTPException(404, f"the file of document {document_id} is gone")
    return FileResponse(
        path,
        media_type=document.content_type,
        filename=document.filename,
        content_disposition_type="attachment",
    )


# --- customers -------------------------------------------------------------------------------


@router.get("/customers/{customer_id}/export", tags=["customers"])
async def export_customer(customer_id: CustomerIdPath, session: SessionDep) -> CustomerExport:
    """Everything sales holds about the customer, table by table (GDPR export)."""
    return await lifecycle.export_customer(session, customer_id)


@router.get("/customers/{customer_id}/activities", tags=["customers", "activities"])
async def customer_activities(
    customer_id: CustomerIdPath, session: SessionDep, limit: Limit = 50, cursor: Cursor = None
) -> Page[ActivityPublic]:
    """The contact's activities, newest first."""
    return await activities.list_activities(
        session, account_id=None, customer_id=customer_id, kind=None, limit=limit, cursor=cursor
    )


__all__: list[Any] = ["router"]
