"""The activities routes: calls, notes, tasks, meetings (.ics), e-mails and documents."""

import asyncio
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response, status
from fastapi.responses import FileResponse

from rapport_events.base import utcnow
from rapport_events.limits import PathId
from rapport_sales.activities import documents, service
from rapport_sales.activities.models import (
    ActivityCreate,
    ActivityPublic,
    MeetingCreate,
    TaskCreate,
    TaskUpdate,
)
from rapport_sales.deps import Cursor, Limit, OwnerFilter, SettingsDep, UnitOfWorkDep, require_token
from rapport_sales.errors import REFERENCE_NOT_FOUND, UNSUPPORTED_TYPE
from rapport_sales.shared import Page

router = APIRouter(dependencies=[Depends(require_token)])


@router.post("/activities", status_code=201, tags=["activities"], responses=REFERENCE_NOT_FOUND)
async def log_activity(
    body: ActivityCreate, uow: UnitOfWorkDep, settings: SettingsDep
) -> ActivityPublic:
    """Log a call or a note about an account or contacts."""
    return await service.log_activity(uow, body)


@router.get("/activities", tags=["activities"])
async def list_activities(
    uow: UnitOfWorkDep,
    customer_id: Annotated[str | None, Query(max_length=64)] = None,
    kind: Annotated[str | None, Query(max_length=16)] = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> Page[ActivityPublic]:
    """Activities newest first, of a contact or of a kind."""
    return await service.list_activities(
        uow, account_id=None, customer_id=customer_id, kind=kind, limit=limit, cursor=cursor
    )


@router.post("/tasks", status_code=201, tags=["activities"], responses=REFERENCE_NOT_FOUND)
async def create_task(
    body: TaskCreate, uow: UnitOfWorkDep, settings: SettingsDep
) -> ActivityPublic:
    """A task for an owner, with a due time."""
    return await service.create_task(uow, body)


@router.get("/tasks/overdue", tags=["activities"])
async def overdue_tasks(
    uow: UnitOfWorkDep, owner: OwnerFilter = None, limit: Limit = 100
) -> list[ActivityPublic]:
    """Tasks past due and not done, oldest due first (for one owner, or everyone)."""
    return await service.overdue_tasks(uow, owner, utcnow(), limit)


@router.patch("/tasks/{task_id}", tags=["activities"])
async def update_task(task_id: PathId, body: TaskUpdate, uow: UnitOfWorkDep) -> ActivityPublic:
    """Mark a task done (or not), or move its due time."""
    return await service.update_task(uow, task_id, body)


@router.post("/meetings", status_code=201, tags=["activities"], responses=REFERENCE_NOT_FOUND)
async def create_meeting(
    body: MeetingCreate, uow: UnitOfWorkDep, settings: SettingsDep
) -> ActivityPublic:
    """A meeting; attendees who are known customers are linked as its contacts."""
    return await service.create_meeting(uow, body)


@router.get(
    "/meetings/{meeting_id}.ics",
    tags=["activities"],
    response_class=Response,
    responses={200: {"content": {"text/calendar": {}}, "description": "RFC 5545 calendar"}},
)
async def meeting_calendar(meeting_id: PathId, uow: UnitOfWorkDep) -> Response:
    """The meeting as an iCalendar file (RFC 5545), for any calendar application."""
    meeting = await service.get_activity(uow, meeting_id, "meeting")
    return Response(
        service.meeting_ics(meeting),
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
    uow: UnitOfWorkDep,
    settings: SettingsDep,
    account_id: Annotated[str | None, Query(max_length=64)] = None,
    owner: OwnerFilter = None,
) -> ActivityPublic:
    """Log an e-mail posted raw (RFC 5322, `Content-Type: message/rfc822`); its addresses
    link it to contacts, and to the account of their domain unless `account_id` is given."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind != "message/rfc822":
        raise HTTPException(415, "post the e-mail as message/rfc822")
    raw = await _bounded_body(request, settings.max_email_bytes)
    return await service.log_email(uow, raw, account_id, owner)


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
    uow: UnitOfWorkDep,
    settings: SettingsDep,
    filename: Annotated[str, Query(min_length=1, max_length=255)],
    account_id: Annotated[str | None, Query(max_length=64)] = None,
    customer_id: Annotated[list[str] | None, Query(max_length=50)] = None,
    owner: OwnerFilter = None,
) -> ActivityPublic:
    """Attach a document (the request body, with its `Content-Type`) to an account or
    contacts; the allowed types and the size limit are settings."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind not in settings.document_types:
        allowed = ", ".join(settings.document_types)
        raise HTTPException(415, f"{kind or 'no content type'} is not one of {allowed}")
    data = await _bounded_body(request, settings.max_document_bytes)
    return await documents.attach(
        uow,
        Path(settings.documents_dir),
        data,
        filename=filename,
        content_type=kind,
        allowed=settings.document_types,
        account_id=account_id,
        customer_ids=list(dict.fromkeys(customer_id or [])),
        owner=owner,
    )


@router.get(
    "/documents/{document_id}",
    tags=["activities"],
    response_class=Response,
    responses={200: {"content": {"application/octet-stream": {}}, "description": "the file"}},
)
async def download_document(
    document_id: PathId, uow: UnitOfWorkDep, settings: SettingsDep
) -> Response:
    """The document's bytes, as attached."""
    document = await documents.get_document(uow, document_id)
    path = Path(settings.documents_dir) / document.id
    if not await asyncio.to_thread(path.is_file):
        raise HTTPException(404, f"the file of document {document_id} is gone")
    return FileResponse(
        path,
        media_type=document.content_type,
        filename=document.filename,
        content_disposition_type="attachment",
    )
