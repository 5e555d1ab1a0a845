"""Signing the webhooks every service sends, and checking them as a receiver would.

Each delivery carries two signatures of the exact body bytes, so a receiver can use
whichever it knows:

- `X-Rapport-Signature: sha256=<hex>`: HMAC-SHA256 of the body under the secret;
- the Standard Webhooks headers (https://www.standardwebhooks.com): `webhook-id` (the
  delivery's id, the same on every retry, to de-duplicate on), `webhook-timestamp`
  (seconds since the epoch) and `webhook-signature: v1,<base64>`, the HMAC-SHA256 of
  `<id>.<timestamp>.<body>`. Its libraries take the secret as `whsec_<base64>`: give them
  `standard_secret(secret)`. The timestamp lets a receiver refuse replays outside a window.
"""

import base64
import hashlib
import hmac
import time
from collections.abc import Mapping
from datetime import timedelta

SIGNATURE_HEADER = "X-Rapport-Signature"
ID_HEADER = "webhook-id"
TIMESTAMP_HEADER = "webhook-timestamp"
STANDARD_SIGNATURE_HEADER = "webhook-signature"
# How far a receiver lets a timestamp stray from its clock (Standard Webhooks' default).
REPLAY_WINDOW_S = 300


def sign(secret: str, body: bytes) -> str:
    """`sha256=<hex>`: the `X-Rapport-Signature` value of a body."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify(secret: str, body: bytes, signature: str) -> bool:
    """Whether an `X-Rapport-Signature` value matches the body (constant-time)."""
    return hmac.compare_digest(sign(secret, body), signature)


def standard_secret(secret: str) -> str:
    """The secret as Standard Webhooks' libraries take it: `whsec_` and its base64."""
    return "whsec_" + base64.b64encode(secret.encode()).decode()


def _standard_signature(secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    signed = f"{message_id}.{timestamp}.".encode() + body
    digest = hmac.new(secret.encode(), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def signed_headers(
    secret: str, body: bytes, message_id: str, *, timestamp: int | None = None
) -> dict[str, str]:
    """Both signatures of a delivery, and its id and time."""
    at = int(time.time()) if timestamp is None else timestamp
    return {
        SIGNATURE_HEADER: sign(secret, body),
        ID_HEADER: message_id,
        TIMESTAMP_HEADER: str(at),
        STANDARD_SIGNATURE_HEADER: _standard_signature(secret, message_id, at, body),
    }


def verify_standard(
    secret: str,
    body: bytes,
    headers: Mapping[str, str],
    *,
    now: float | None = None,
    window_s: int = REPLAY_WINDOW_S,
) -> bool:
    """What a receiver checks: a `v1` signature that matches, from within the window."""
    lowered = {name.lower(): value for name, value in headers.items()}
    message_id = lowered.get(ID_HEADER, "")
    try:
        timestamp = int(lowered.get(TIMESTAMP_HEADER, ""))
    except ValueError:
        return False
    current = time.time() if now is None else now
    if not message_id or abs(current - timestamp) > window_s:
        return False
    expected = _standard_signature(secret, message_id, timestamp, body)
    offered = lowered.get(STANDARD_SIGNATURE_HEADER, "").split()
    return any(hmac.compare_digest(expected, candidate) for candidate in offered)


# Answers a receiver may give once it is ready again: a timeout, a conflict with a delivery
# in flight, "too early", "too many requests". Any other 4xx refuses the delivery itself.
RETRYABLE_CLIENT_ERRORS = frozenset({408, 409, 425, 429})


def refused_for_good(status_code: int | None) -> bool:
    """Whether the receiver refused the delivery itself (a 4xx no retry can change)."""
    return (
        status_code is not None
        and 400 <= status_code < 500
        and status_code not in RETRYABLE_CLIENT_ERRORS
    )


def retry_delay(attempts: int, base_s: float, max_s: float) -> timedelta:
    """How long after failed attempt number `attempts` (from 1) to try again: doubling."""
    return timedelta(seconds=min(base_s * 2 ** max(attempts - 1, 0), max_s))
