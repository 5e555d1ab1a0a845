"""The social mentions inbox: mentions of the brand newest first, one with its replies, and
answering it on its platform (support posts the reply to the platform's webhook)."""

from typing import Annotated, Literal, get_args
from urllib.parse import quote

from fastapi import APIRouter, Form, Path, Query, Request
from fastapi.responses import HTMLResponse, Response

from rapport_console import access_log
from rapport_console.clients import Call
from rapport_console.support_pages import Agent, DeskDep
from rapport_console.web import ClientsDep, WriteSessionDep, form_error, render

router = APIRouter(include_in_schema=False)

MentionId = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")]
MentionStatus = Literal["new", "ticketed", "replied", "closed"]
Sentiment = Literal["positive", "neutral", "negative"]
INBOX_PAGE = 50


@router.get("/mentions", response_class=HTMLResponse)
async def mentions_inbox(
    request: Request,
    clients: ClientsDep,
    db: WriteSessionDep,
    operator: Agent,
    status: Annotated[MentionStatus | None, Query()] = None,
    sentiment: Annotated[Sentiment | None, Query()] = None,
) -> Response:
    """Mentions newest first, by status and sentiment."""
    params: dict[str, str | int] = {"limit": INBOX_PAGE}
    if status:
        params["status"] = status
    if sentiment:
        params["sentiment"] = sentiment
    fanout = await clients.fan_out({"mentions": Call("support", "/social/mentions", params)})
    mentions = fanout.get("mentions", {}).get("items", [])
    for mention in mentions:
        if mention.get("customer_id"):
            access_log.record(
                db, operator.username, operator.role, mention["customer_id"], "mentions"
            )
    context = {
        "mentions": mentions,
        "filters": {"status": status or "", "sentiment": sentiment or ""},
        "statuses": get_args(MentionStatus),
        "sentiments": get_args(Sentiment),
        "partial": fanout.partial,
        "unavailable": fanout.unavailable,
    }
    return render(request, "mentions.html", context)


@router.get("/mentions/{mention_id}", response_class=HTMLResponse)
async def mention_page(
    request: Request,
    mention_id: MentionId,
    clients: ClientsDep,
    db: WriteSessionDep,
    operator: Agent,
) -> Response:
    """One mention with its replies and their delivery, and the form to answer it."""
    path = f"/social/mentions/{quote(mention_id, safe='')}"
    fanout = await clients.fan_out({"mention": Call("support", path)})
    mention = fanout.get("mention")
    if mention is None:
        if fanout.partial:
            return render(request, "error.html", {"message": "Support did not answer."}, 503)
        return render(request, "error.html", {"message": "No such mention."}, 404)
    if mention.get("customer_id"):
        access_log.record(db, operator.username, operator.role, mention["customer_id"], "mention")
    return render(request, "mention.html", {"mention": mention})


@router.post("/mentions/{mention_id}/reply", response_class=HTMLResponse)
async def reply_to_mention(
    mention_id: MentionId, desk: DeskDep, text: Annotated[str, Form(max_length=5000)] = ""
) -> Response:
    """Answer the mention on its platform, signed by the operator."""
    if not text.strip():
        return form_error(desk.request, "Not sent: the reply is empty.")
    mention = Call("support", f"/social/mentions/{quote(mention_id, safe='')}")
    reply = {"text": text.strip(), "author": desk.operator.username}
    path = f"{mention.path}/reply"
    return await desk.change(
        mention, "mention-reply", lambda: desk.clients.post("support", path, reply)
    )
