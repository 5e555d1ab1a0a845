"""Rendering in the sandbox, signed links, and the two channels against real servers:
an SMTP server (aiosmtpd) and an HTTP webhook receiver."""

import hashlib
import hmac
from typing import Any

import httpx
import pytest
from aiosmtpd.controller import Controller

from rapport_campaign import delivery
from rapport_campaign.settings import Settings
from rapport_campaign.tracking import InvalidToken, Tokens, with_utm
from rapport_events.testing.broker import free_port

WEBHOOK_SECRET = "delivery-test-secret"


def rendered(text: str = "Hello", html: str | None = None) -> delivery.Rendered:
    return delivery.Rendered(subject="Spring sale", text=text, html=html)


def email_to(address: str, **fields: Any) -> Any:
    values: dict[str, Any] = {
        "sender": "Rapport <news@rapport.example>",
        "to": address,
        "message_id": "m-1",
        "rendered": rendered(),
        "unsubscribe_url": "http://campaign.test/u/tok",
        "open_url": "http://campaign.test/o/tok",
    }
    values.update(fields)
    return delivery.build_email(**values)


class TestRendering:
    def test_profile_fields_fill_the_templates(self) -> None:
        variant = {
            "name": "A",
            "subject": "Hi {{ customer.first_name }}",
            "body": "{{ offer_code }}",
        }
        result = delivery.render(
            variant, {"customer": {"first_name": "Ada"}, "offer_code": "X-1"}, track=str
        )
        assert (result.subject, result.text) == ("Hi Ada", "X-1")

    def test_the_sandbox_refuses_python_internals(self) -> None:
        variant = {"name": "A", "body": "{{ customer.__class__.__mro__ }}"}
        with pytest.raises(delivery.TemplateProblem, match="unsafe"):
            delivery.render(variant, {"customer": {}}, track=str)

    def test_html_escapes_what_customers_typed(self) -> None:
        variant = {"name": "A", "body": "x", "html": "<p>{{ customer.first_name }}</p>"}
        result = delivery.render(variant, {"customer": {"first_name": "<script>"}}, track=str)
        assert result.html == "<p>&lt;script&gt;</p>"

    def test_a_syntax_error_names_the_part_and_line(self) -> None:
        with pytest.raises(delivery.TemplateProblem, match=r"B.body: .* \(line 2\)"):
            delivery.check_variant({"name": "B", "body": "ok\n{% if %}"})

    def test_track_makes_links_through_the_redirect(self) -> None:
        variant = {"name": "A", "body": "{{ track('https://shop.example/x') }}"}
        result = delivery.render(variant, {}, track=lambda url: f"T[{url}]")
        assert result.text == "T[https://shop.example/x]"


class TestUnsubscribeLink:
    def test_it_is_added_when_the_template_has_none(self) -> None:
        text = delivery.with_unsubscribe_text("Hello", "http://u")
        assert text.endswith("Unsubscribe: http://u\n")

    def test_it_is_not_repeated_when_the_template_has_it(self) -> None:
        assert delivery.with_unsubscribe_text("Bye http://u", "http://u") == "Bye http://u"

    def test_the_html_part_gets_the_link_and_the_pixel_before_the_body_ends(self) -> None:
        html = delivery.email_html(
            rendered(html="<html><body><p>Hi</p></body></html>"), "http://u", "http://o"
        )
        assert html.index('href="http://u"') < html.index('src="http://o"') < html.index("</body>")


class TestTokens:
    tokens = Tokens("secret", "http://campaign.test")

    def test_a_click_token_carries_the_message_and_target(self) -> None:
        url = self.tokens.click_url("m-1", "https://shop.example/a?b=1")
        target = self.tokens.click(url.rsplit("/", 1)[1])
        assert (target.message_id, target.url) == ("m-1", "https://shop.example/a?b=1")

    def test_a_token_signed_with_another_secret_is_refused(self) -> None:
        forged = Tokens("other", "http://x").click_url("m-1", "https://evil.example")
        with pytest.raises(InvalidToken):
            self.tokens.click(forged.rsplit("/", 1)[1])

    def test_an_altered_token_is_refused(self) -> None:
        token = self.tokens.click_url("m-1", "https://shop.example").rsplit("/", 1)[1]
        with pytest.raises(InvalidToken):
            self.tokens.click(token[:-2] + ("AA" if token[-2:] != "AA" else "BB"))

    def test_a_signed_target_that_is_not_a_web_url_is_refused(self) -> None:
        token = self.tokens.click_url("m-1", "javascript:alert(1)").rsplit("/", 1)[1]
        with pytest.raises(InvalidToken, match="not an http"):
            self.tokens.click(token)

    def test_tokens_of_one_kind_are_not_accepted_as_another(self) -> None:
        token = self.tokens.open_url("m-1").rsplit("/", 1)[1]
        with pytest.raises(InvalidToken):
            self.tokens.unsubscribe(token)

    def test_utm_parameters_are_added_but_the_authors_are_kept(self) -> None:
        url = with_utm(
            "https://shop.example/p?utm_source=mail&x=1",
            source="rapport",
            medium="email",
            campaign="spring",
            content="B",
        )
        assert url == (
            "https://shop.example/p?utm_source=mail&x=1"
            "&utm_medium=email&utm_campaign=spring&utm_content=B"
        )


class RefusingSink:
    async def handle_RCPT(  # noqa: N802
        self, server: Any, session: Any, envelope: Any, address: str, options: Any
    ) -> str:
        return "550 5.1.1 no such mailbox"


class TestEmailChannel:
    async def test_the_smtp_server_receives_a_multipart_message(self, smtp: Any) -> None:
        transport = delivery.EmailTransport(Settings(smtp_host=smtp.host, smtp_port=smtp.port))

        await transport.send(email_to("ann@example.com"))

        [received] = smtp.to("ann@example.com")
        assert received["Subject"] == "Spring sale"
        assert received["List-Unsubscribe"] == "<http://campaign.test/u/tok>"
        assert received["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        text = received.get_body(("plain",)).get_content()
        html = received.get_body(("html",)).get_content()
        assert "Unsubscribe: http://campaign.test/u/tok" in text
        assert 'src="http://campaign.test/o/tok"' in html

    async def test_a_server_that_is_down_is_a_transient_failure(self) -> None:
        transport = delivery.EmailTransport(
            Settings(smtp_host="127.0.0.1", smtp_port=free_port(), smtp_timeout_s=2)
        )
        with pytest.raises(delivery.DeliveryError) as failed:
            await transport.send(email_to("ann@example.com"))
        assert failed.value.permanent is False

    async def test_a_refused_mailbox_is_a_permanent_failure(self) -> None:
        port = free_port()
        controller = Controller(RefusingSink(), hostname="127.0.0.1", port=port)
        controller.start()
        try:
            transport = delivery.EmailTransport(Settings(smtp_host="127.0.0.1", smtp_port=port))
            with pytest.raises(delivery.DeliveryError) as failed:
                await transport.send(email_to("nobody@example.com"))
        finally:
            controller.stop()
        assert failed.value.permanent is True


class TestWebhookChannel:
    def transport(self, webhook: Any, client: httpx.AsyncClient) -> delivery.WebhookTransport:
        settings = Settings(sms_webhook_url=f"{webhook.url}/sms", webhook_secret=WEBHOOK_SECRET)
        return delivery.WebhookTransport(settings, client)

    async def test_the_body_is_signed_with_hmac_sha256(self, webhook: Any) -> None:
        async with httpx.AsyncClient() as client:
            await self.transport(webhook, client).send(
                "sms", {"message_id": "m-1", "to": "+33600000000", "text": "Sale!"}
            )

        [request] = webhook.requests
        expected = hmac.new(WEBHOOK_SECRET.encode(), request["body"], hashlib.sha256).hexdigest()
        assert request["headers"]["x-rapport-signature"] == f"sha256={expected}"
        assert request["headers"]["x-rapport-message-id"] == "m-1"
        assert (request["path"], request["json"]["text"]) == ("/sms", "Sale!")

    async def test_a_server_error_is_transient_and_a_client_error_permanent(
        self, webhook: Any
    ) -> None:
        webhook.statuses[:] = [503, 400]
        async with httpx.AsyncClient() as client:
            transport = self.transport(webhook, client)
            outcomes = []
            for _ in range(2):
                with pytest.raises(delivery.DeliveryError) as failed:
                    await transport.send("sms", {"message_id": "m-1"})
                outcomes.append((str(failed.value), failed.value.permanent))

        assert outcomes == [("webhook answered 503", False), ("webhook answered 400", True)]

    async def test_a_channel_without_a_webhook_waits_for_one(self) -> None:
        async with httpx.AsyncClient() as client:
            transport = delivery.WebhookTransport(Settings(), client)
            with pytest.raises(delivery.DeliveryError, match="no webhook") as failed:
                await transport.send("push", {"message_id": "m-1"})
        assert failed.value.permanent is False
