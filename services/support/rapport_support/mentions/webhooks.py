"""Replies to social platforms: a signed JSON body (`rapport_events.webhooks`) over httpx."""

import json
import time
from dataclasses import dataclass
from typing import Any

import httpx

from rapport_events.webhooks import SIGNATURE_HEADER, sign, signed_headers, verify
from rapport_support.mentions.models import SupportMention, SupportMentionReply
from rapport_support.settings import SocialWebhook
from rapport_support.shared import aware

__all__ = ["SIGNATURE_HEADER", "sign", "verify", "post_reply", "reply_body"]

DELIVERY_HEADER = "X-Rapport-Delivery"
ATTEMPT_HEADER = "X-Rapport-Attempt"


def reply_body(reply: SupportMentionReply, mention: SupportMention) -> bytes:
    """The JSON the platform's connector receives."""
    payload: dict[str, Any] = {
        "reply_id": reply.id,
        "mention_id": mention.id,
        "platform": mention.platform,
        "handle": mention.handle,
        "in_reply_to": mention.external_id,
        "in_reply_to_url": mention.url,
        "text": reply.text,
        "author": reply.author,
        "created_at": aware(reply.created_at).isoformat(),
    }
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()


@dataclass(frozen=True)
class Outcome:
    status_code: int | None
    error: str | None
    duration_ms: float


async def post_reply(
    client: httpx.AsyncClient,
    hook: SocialWebhook,
    reply: SupportMentionReply,
    mention: SupportMention,
    timeout_s: float,
) -> Outcome:
    """One delivery attempt; never raises for network trouble, it reports it."""
    body = reply_body(reply, mention)
    headers = {
        "Content-Type": "application/json",
        # Receivers de-duplicate on the delivery id: a retry after a lost answer repeats it.
        **signed_headers(hook.secret.get_secret_value(), body, reply.id),
        DELIVERY_HEADER: reply.id,
        ATTEMPT_HEADER: str(reply.attempts),
    }
    started = time.perf_counter()
    try:
        response = await client.post(
            str(hook.url), content=body, headers=headers, timeout=timeout_s
        )
    except httpx.HTTPError as failure:
        elapsed = (time.perf_counter() - started) * 1000
        return Outcome(None, f"{type(failure).__name__}: {failure}".strip(), elapsed)
    elapsed = (time.perf_counter() - started) * 1000
    refused = None if response.is_success else f"HTTP {response.status_code}: {response.text[:500]}"
    return Outcome(response.status_code, refused, elapsed)
