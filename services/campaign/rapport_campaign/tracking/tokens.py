"""Signed tokens for the links in messages, and the UTM parameters clicks carry.

A click token holds the message id and the exact target URL it was made for, signed
with the service's secret and the time it was made: `/t/{token}` redirects only to URLs
campaign itself wrote into a message (and the route checks the message still names that
link), so it can never be used as an open redirect. A token older than the setting's
maximum age is expired: refused, not followed.

Tokens made before they carried a time (salts without `.v2`) are refused as invalid:
they were signed with a secret nothing checked the strength of.
"""

from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

SALTS = {"click": "rapport.campaign.click.v2", "open": "rapport.campaign.open.v2"}
UNSUBSCRIBE_SALT = "rapport.campaign.unsubscribe.v2"
DAY_S = 86_400


class InvalidToken(ValueError):
    """The token was not made by this service (or was altered)."""


class ExpiredToken(InvalidToken):
    """The token was made by this service, longer ago than links live."""


@dataclass(frozen=True)
class ClickTarget:
    message_id: str
    url: str


@dataclass(frozen=True)
class UnsubscribeTarget:
    message_id: str
    customer_id: str
    channel: str


class Tokens:
    """Makes and checks the tokens of click, open and unsubscribe links."""

    def __init__(self, secret: str, public_url: str, max_age_days: float = 90.0) -> None:
        self._click = URLSafeTimedSerializer(secret, salt=SALTS["click"])
        self._open = URLSafeTimedSerializer(secret, salt=SALTS["open"])
        self._unsubscribe = URLSafeTimedSerializer(secret, salt=UNSUBSCRIBE_SALT)
        self._base = public_url.rstrip("/")
        self._max_age_s = round(max_age_days * DAY_S)

    def click_url(self, message_id: str, url: str) -> str:
        return f"{self._base}/t/{self._click.dumps([message_id, url])}"

    def open_url(self, message_id: str) -> str:
        return f"{self._base}/o/{self._open.dumps(message_id)}"

    def unsubscribe_url(self, message_id: str, customer_id: str, channel: str) -> str:
        token = self._unsubscribe.dumps([message_id, customer_id, channel])
        return f"{self._base}/u/{token}"

    def click(self, token: str) -> ClickTarget:
        message_id, url = self._load(self._click, token, 2)
        if not is_web_url(url):
            raise InvalidToken("the link target is not an http(s) URL")
        return ClickTarget(message_id, url)

    def open(self, token: str) -> str:
        value = self._load(self._open, token, None)
        if not isinstance(value, str):
            raise InvalidToken("malformed open token")
        return value

    def unsubscribe(self, token: str) -> UnsubscribeTarget:
        message_id, customer_id, channel = self._load(self._unsubscribe, token, 3)
        return UnsubscribeTarget(message_id, customer_id, channel)

    def _load(self, serializer: URLSafeTimedSerializer, token: str, size: int | None) -> Any:
        try:
            value = serializer.loads(token, max_age=self._max_age_s)
        except SignatureExpired as error:
            raise ExpiredToken("this link has expired") from error
        except (BadSignature, UnicodeDecodeError, ValueError) as error:
            raise InvalidToken("this link is not valid") from error
        if size is not None and (
            not isinstance(value, list)
            or len(value) != size
            or not all(isinstance(part, str) for part in value)
        ):
            raise InvalidToken("malformed token")
        return value


def is_web_url(url: str) -> bool:
    parts = urlsplit(url)
    return parts.scheme in ("http", "https") and bool(parts.netloc)


def with_utm(url: str, *, source: str, medium: str, campaign: str, content: str | None) -> str:
    """The URL with utm_* parameters added; ones the author set already are kept."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    present = {name for name, _ in query}
    utm = {
        "utm_source": source,
        "utm_medium": medium,
        "utm_campaign": campaign,
        "utm_content": content,
    }
    query += [(name, value) for name, value in utm.items() if value and name not in present]
    return urlunsplit(parts._replace(query=urlencode(query)))
