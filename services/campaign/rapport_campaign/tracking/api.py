"""The links inside messages: click, open pixel and unsubscribe, each carrying a signed token."""

import html
from typing import Any

from fastapi import APIRouter, HTTPException, Response, status
from fastapi.responses import HTMLResponse, RedirectResponse

from rapport_campaign.deps import TokensDep, UnitOfWorkDep, WriteUnitOfWorkDep
from rapport_campaign.tracking import service
from rapport_campaign.tracking.tokens import ExpiredToken, InvalidToken
from rapport_campaign.unit_of_work import CampaignUnitOfWork

# Links inside messages: the signed token is the credential.
public = APIRouter(tags=["tracking"])

# A transparent 1x1 GIF.
PIXEL = bytes.fromhex(
    "47494638396101000100800000000000ffffff21f90401000000002c00000000010001000002024401003b"
)
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
async def click(token: str, uow: WriteUnitOfWorkDep, tokens: TokensDep) -> RedirectResponse:
    """A click in a message: recorded, then redirected to the signed target."""
    try:
        target = tokens.click(token)
    except InvalidToken as error:
        raise _invalid_link(error) from error
    url = await service.record_click(uow, target.message_id, target.url)
    if url is None:
        raise _invalid_link(InvalidToken("this link does not belong to a message campaign sent"))
    return RedirectResponse(url, status_code=status.HTTP_302_FOUND)


@public.get(
    "/o/{token}",
    response_class=Response,
    responses={200: {"content": {"image/gif": {}}}, **LINK_REFUSED},
)
async def open_pixel(token: str, uow: WriteUnitOfWorkDep, tokens: TokensDep) -> Response:
    """The open pixel of an e-mail."""
    try:
        message_id = tokens.open(token)
    except InvalidToken as error:
        raise _invalid_link(error) from error
    await service.record_open(uow, message_id)
    return Response(PIXEL, media_type="image/gif", headers={"Cache-Control": "no-store"})


@public.get("/u/{token}", response_class=HTMLResponse, responses=LINK_REFUSED)
async def unsubscribe_link(token: str, uow: WriteUnitOfWorkDep, tokens: TokensDep) -> HTMLResponse:
    """Unsubscribe from a channel by following the link: revokes its consent."""
    return await _unsubscribe(token, uow, tokens)


@public.post("/u/{token}", response_class=HTMLResponse, responses=LINK_REFUSED)
async def unsubscribe_one_click(token: str, uow: UnitOfWorkDep, tokens: TokensDep) -> HTMLResponse:
    """One-click unsubscribe (RFC 8058 `List-Unsubscribe-Post`): revokes the channel's consent."""
    return await _unsubscribe(token, uow, tokens)


async def _unsubscribe(token: str, uow: CampaignUnitOfWork, tokens: TokensDep) -> HTMLResponse:
    try:
        target = tokens.unsubscribe(token)
    except InvalidToken as error:
        raise _invalid_link(error) from error
    await service.unsubscribe(uow, target.customer_id, target.channel, target.message_id)
    channel = html.escape(target.channel)
    return HTMLResponse(
        "<!doctype html><title>Unsubscribed</title>"
        f"<p>You will no longer receive marketing messages by {channel}.</p>"
    )
