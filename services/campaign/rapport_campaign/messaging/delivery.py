"""Rendering messages in a sandbox, and handing them to SMTP or to a signed webhook."""

import html
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from functools import lru_cache
from typing import Any

import aiosmtplib
import httpx
from jinja2 import StrictUndefined, Template, TemplateSyntaxError
from jinja2.exceptions import SecurityError, UndefinedError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from rapport_campaign.messaging import template_data
from rapport_campaign.settings import Settings
from rapport_events.webhooks import refused_for_good, signed_headers

# Templates come from marketers over the API: the sandbox keeps them away from Python
# internals, and the immutable variant stops them from changing the objects they are given.
_TEXT = ImmutableSandboxedEnvironment(autoescape=False)
_HTML = ImmutableSandboxedEnvironment(autoescape=True)
# A template is checked on sample data with every name strict, so a misspelt variable is
# refused when the campaign is saved instead of mailing "Hello ," to every recipient.
_STRICT = {
    False: ImmutableSandboxedEnvironment(autoescape=False, undefined=StrictUndefined),
    True: ImmutableSandboxedEnvironment(autoescape=True, undefined=StrictUndefined),
}

SAMPLE_CONTEXT: dict[str, Any] = {
    "customer": template_data.record(
        {
            "id": "cust-sample",
            "first_name": "Ada",
            "last_name": "Lovelace",
            "email": "ada@example.com",
            "city": "London",
            "country": "GB",
            "tier": "gold",
            "orders": 3,
            "lifetime_value": "420.00",
            "loyalty_points": 120,
        },
        "Ada Lovelace",
    ),
    "recommendation": template_data.record(
        {
            "product_id": "p-1",
            "name": "Analytical Engine",
            "category": "machines",
            "price": "99.00",
        },
        "Analytical Engine",
    ),
    "offer_code": "SAMPLE-1A2B3C4D",
    "cta_url": "https://rapport.example/t/sample",
    "unsubscribe_url": "https://rapport.example/u/sample",
    "campaign": template_data.record({"id": "cmp-sample", "name": "Sample"}, "Sample"),
    "cart": template_data.cart(
        {
            "cart_id": "cart-1",
            "value": "42.00",
            "currency": "EUR",
            "items": [
                {"product_id": "p-7", "sku": "BX2-BLK", "name": "Boots", "price": "21.00",
                 "quantity": 2, "category": "shoes", "product_model": "X2"},
            ],
        }
    ),
    "order": template_data.order(
        "o-sample",
        "99.00",
        "EUR",
        datetime(2026, 3, 2, tzinfo=UTC),
        [{"product_id": "p-1", "name": "Analytical Engine", "price": "99.00", "quantity": 1}],
    ),
}  # fmt: skip


class TemplateProblem(ValueError):
    """A template that does not compile or render in the sandbox."""


class DeliveryError(Exception):
    """The channel did not take the message; `permanent` means retrying cannot help."""

    def __init__(self, message: str, *, permanent: bool) -> None:
        super().__init__(message)
        self.permanent = permanent


@dataclass(frozen=True)
class Rendered:
    subject: str | None
    text: str
    html: str | None


@lru_cache(maxsize=512)
def _compile(source: str, is_html: bool, strict: bool = False) -> Template:
    if strict:
        return _STRICT[is_html].from_string(source)
    return (_HTML if is_html else _TEXT).from_string(source)


def _render(
    source: str, context: dict[str, Any], *, is_html: bool, part: str, strict: bool = False
) -> str:
    try:
        return _compile(source, is_html, strict).render(context)
    except TemplateSyntaxError as error:
        raise TemplateProblem(f"{part}: {error.message} (line {error.lineno})") from error
    except (SecurityError, UndefinedError) as error:
        raise TemplateProblem(f"{part}: {error}") from error
    except Exception as error:  # a template's own arithmetic or filters may fail on some data
        raise TemplateProblem(f"{part}: {type(error).__name__}: {error}") from error


def render(
    variant: dict[str, Any],
    context: dict[str, Any],
    track: Callable[[str], str],
    *,
    strict: bool = False,
) -> Rendered:
    """The variant's subject, text and HTML for one recipient."""
    context = {**context, "track": track}
    name = variant.get("name", "A")
    subject = variant.get("subject")
    html_source = variant.get("html")
    return Rendered(
        subject=(
            " ".join(
                _render(
                    subject, context, is_html=False, part=f"{name}.subject", strict=strict
                ).split()
            )
            if subject
            else None
        ),
        text=_render(variant["body"], context, is_html=False, part=f"{name}.body", strict=strict),
        html=_render(html_source, context, is_html=True, part=f"{name}.html", strict=strict)
        if html_source
        else None,
    )


def check_variant(variant: dict[str, Any]) -> None:
    """Raise TemplateProblem unless every template of the variant renders on sample data,
    naming every variable it uses."""
    render(variant, SAMPLE_CONTEXT, track=lambda url: url, strict=True)


def with_unsubscribe_text(text: str, unsubscribe_url: str) -> str:
    """Every message carries a working unsubscribe link, whether the template has one or not."""
    if unsubscribe_url in text:
        return text
    return f"{text.rstrip()}\n\nUnsubscribe: {unsubscribe_url}\n"


def email_html(rendered: Rendered, unsubscribe_url: str, open_url: str) -> str:
    """The HTML part, with the unsubscribe link and the open pixel added."""
    body = rendered.html
    if body is None:
        paragraphs = html.escape(rendered.text.strip()).split("\n\n")
        body = "".join(f"<p>{p.replace(chr(10), '<br>')}</p>" for p in paragraphs)
    extra = ""
    if unsubscribe_url not in body:
        extra += f'<p style="font-size:small"><a href="{unsubscribe_url}">Unsubscribe</a></p>'
    extra += f'<img src="{open_url}" width="1" height="1" alt="" style="display:none">'
    closing = body.lower().rfind("</body>")
    if closing == -1:
        return body + extra
    return body[:closing] + extra + body[closing:]


def build_email(
    *,
    sender: str,
    to: str,
    message_id: str,
    rendered: Rendered,
    unsubscribe_url: str,
    open_url: str,
) -> EmailMessage:
    """A multipart e-mail with one-click unsubscribe headers (RFC 8058)."""
    email = EmailMessage()
    email["From"] = sender
    email["To"] = to
    email["Subject"] = rendered.subject or ""
    email["Date"] = formatdate(localtime=False)
    email["Message-ID"] = make_msgid(idstring=message_id, domain="rapport.campaign")
    email["List-Unsubscribe"] = f"<{unsubscribe_url}>"
    email["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    email["X-Rapport-Message-Id"] = message_id
    email.set_content(with_unsubscribe_text(rendered.text, unsubscribe_url))
    email.add_alternative(email_html(rendered, unsubscribe_url, open_url), subtype="html")
    return email


class EmailTransport:
    """Sends e-mail to the SMTP server in settings."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings

    async def send(self, email: EmailMessage) -> None:
        settings = self._settings
        try:
            await aiosmtplib.send(
                email,
                hostname=settings.smtp_host,
                port=settings.smtp_port,
                username=settings.smtp_username,
                password=settings.smtp_password,
                use_tls=settings.smtp_tls == "tls",
                start_tls=settings.smtp_tls == "starttls",
                timeout=settings.smtp_timeout_s,
            )
        except aiosmtplib.SMTPRecipientsRefused as refused:
            codes = [getattr(r, "code", 500) for r in refused.recipients]
            raise DeliveryError(
                f"recipient refused: {refused}", permanent=all(c >= 500 for c in codes)
            ) from refused
        except aiosmtplib.SMTPResponseException as error:
            raise DeliveryError(
                f"SMTP {error.code}: {error.message}", permanent=error.code >= 500
            ) from error
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as error:
            raise DeliveryError(f"SMTP unavailable: {error!r}", permanent=False) from error


class WebhookTransport:
    """Posts SMS, push and social messages to their provider's webhook, signed with HMAC."""

    def __init__(self, settings: Settings, client: httpx.AsyncClient) -> None:
        self._settings = settings
        self._client = client

    async def send(self, channel: str, payload: dict[str, Any]) -> None:
        url = self._settings.webhook_url(channel)
        if not url:
            raise DeliveryError(f"no webhook is configured for {channel}", permanent=False)
        body = json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()
        headers = {
            "Content-Type": "application/json",
            **signed_headers(self._settings.webhook_secret, body, str(payload["message_id"])),
            "X-Rapport-Message-Id": str(payload["message_id"]),
            "X-Rapport-Channel": channel,
        }
        try:
            response = await self._client.post(
                url, content=body, headers=headers, timeout=self._settings.webhook_timeout_s
            )
        except httpx.HTTPError as error:
            raise DeliveryError(f"webhook unreachable: {error!r}", permanent=False) from error
        if response.is_success:
            return
        status = response.status_code
        raise DeliveryError(f"webhook answered {status}", permanent=refused_for_good(status))
