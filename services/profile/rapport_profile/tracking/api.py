"""The tracking routes (Segment's HTTP Tracking API), under /v1 with a write key."""

from typing import Any

from fastapi import APIRouter, Request

from rapport_profile.consents import privacy_signals
from rapport_profile.deps import (
    SettingsDep,
    UnitOfWorkDep,
    WriteKeyDep,
    check_write_key,
)
from rapport_profile.tracking import service
from rapport_profile.tracking.parsing import (
    MAX_BATCH_BYTES,
    MAX_CALL_BYTES,
    parse_json,
    parse_messages,
    read_body,
)

router = APIRouter(prefix="/v1", tags=["tracking"])


TRACKING_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {"description": "malformed JSON or message, or over the size limits"},
    401: {"description": "missing or unknown write key"},
    413: {"description": "the body is over the service's cap on every request (1 MiB)"},
}


async def _track(
    request: Request, kind: str | None, key: str | None, settings: SettingsDep, uow: UnitOfWorkDep
) -> dict[str, bool]:
    limit = MAX_BATCH_BYTES if kind is None else MAX_CALL_BYTES
    # The body is read whatever its content type: sendBeacon and analytics.js send text/plain.
    raw = await read_body(request.stream(), request.headers.get("content-encoding"), limit)
    payload = parse_json(raw)
    if key is None:
        check_write_key(settings, payload.get("writeKey"))
    messages = parse_messages(payload, kind)
    await service.ingest(
        uow,
        messages,
        currency=settings.default_currency,
        gpc=privacy_signals.header_says_gpc(request.headers.get("sec-gpc")),
        sharing_categories=settings.sharing_consent_categories,
    )
    return {"success": True}


# analytics.js posts to the one-letter paths; they are the same routes.
@router.post("/identify", responses=TRACKING_RESPONSES)
@router.post("/i", responses=TRACKING_RESPONSES, include_in_schema=False)
async def track_identify(
    request: Request, key: WriteKeyDep, settings: SettingsDep, uow: UnitOfWorkDep
) -> dict[str, bool]:
    """Segment identify: who the user is, with traits; links anonymous activity."""
    return await _track(request, "identify", key, settings, uow)


@router.post("/track", responses=TRACKING_RESPONSES)
@router.post("/t", responses=TRACKING_RESPONSES, include_in_schema=False)
async def track_event(
    request: Request, key: WriteKeyDep, settings: SettingsDep, uow: UnitOfWorkDep
) -> dict[str, bool]:
    """Segment track: an action; e-commerce, survey and loyalty names map to domain events."""
    return await _track(request, "track", key, settings, uow)


@router.post("/page", responses=TRACKING_RESPONSES)
@router.post("/p", responses=TRACKING_RESPONSES, include_in_schema=False)
async def track_page(
    request: Request, key: WriteKeyDep, settings: SettingsDep, uow: UnitOfWorkDep
) -> dict[str, bool]:
    """Segment page: a page view."""
    return await _track(request, "page", key, settings, uow)


@router.post("/screen", responses=TRACKING_RESPONSES)
@router.post("/s", responses=TRACKING_RESPONSES, include_in_schema=False)
async def track_screen(
    request: Request, key: WriteKeyDep, settings: SettingsDep, uow: UnitOfWorkDep
) -> dict[str, bool]:
    """Segment screen: a mobile screen view."""
    return await _track(request, "screen", key, settings, uow)


@router.post("/group", responses=TRACKING_RESPONSES)
@router.post("/g", responses=TRACKING_RESPONSES, include_in_schema=False)
async def track_group(
    request: Request, key: WriteKeyDep, settings: SettingsDep, uow: UnitOfWorkDep
) -> dict[str, bool]:
    """Segment group: the account (company) the user belongs to, with its traits."""
    return await _track(request, "group", key, settings, uow)


@router.post("/alias", responses=TRACKING_RESPONSES)
@router.post("/a", responses=TRACKING_RESPONSES, include_in_schema=False)
async def track_alias(
    request: Request, key: WriteKeyDep, settings: SettingsDep, uow: UnitOfWorkDep
) -> dict[str, bool]:
    """Segment alias: `previousId` and `userId` are the same person."""
    return await _track(request, "alias", key, settings, uow)


@router.post("/batch", responses=TRACKING_RESPONSES)
@router.post("/b", responses=TRACKING_RESPONSES, include_in_schema=False)
async def track_batch(
    request: Request, key: WriteKeyDep, settings: SettingsDep, uow: UnitOfWorkDep
) -> dict[str, bool]:
    """Segment batch: up to 500 KB of identify, track, page, screen, group and alias messages."""
    return await _track(request, None, key, settings, uow)
