"""Rendering in the sandbox, signed links, and the two channels against real servers:
an SMTP server (aiosmtpd) and an HTTP webhook receiver."""

import hashlib
import hmac
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiosmtpd.controller import Controller
from standardwebhooks import Webhook

from rapport_campaign.messaging import delivery, template_data
from rapport_campaign.settings import Settings
from rapport_campaign.tracking.tokens import InvalidToken, Tokens, with_utm
from rapport_events import webhooks
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


class TestCartsAndOrdersInTemplates:
    CART = {
        "cart_id": "cart-1",
        "value": "111",
        "currency": "EUR",
        "items": [
            {"product_id": "p-7", "sku": "BX2", "name": "Boots", "price": "45.5", "quantity": 2},
            {"product_id": "p-8", "name": None, "price": "20", "quantity": 1},
        ],
    }

    def render(self, body: str, **context: Any) -> str:
        return delivery.render({"name": "A", "body": body}, context, track=str).text

    def test_a_cart_is_an_object_with_items_that_have_attributes(self) -> None:
        body = (
            "{% for item in cart.items %}{{ item.name or item.product_id }} ({{ item.sku }}) "
            "x{{ item.quantity }} at {{ item.price }}; {% endfor %}{{ cart.total }} "
            "{{ cart.currency }}"
        )
        text = self.render(body, cart=template_data.cart(self.CART))
        assert text == "Boots (BX2) x2 at 45.50; p-8 (None) x1 at 20.00; 111.00 EUR"

    def test_a_cart_and_its_items_print_as_short_labels_not_dicts(self) -> None:
        text = self.render(
            "{{ cart }} | {{ cart.items[0] }} | {{ cart.items | length }}",
            cart=template_data.cart(self.CART),
        )
        assert text == "2 items, 111.00 EUR | Boots × 2 | 2"

    def test_an_order_has_a_total_a_date_and_items(self) -> None:
        placed = template_data.order(
            "o-1",
            "99",
            "GBP",
            datetime(2026, 3, 2, tzinfo=UTC),
            [{"product_id": "p", "name": "Kettle"}],
        )
        text = self.render(
            "{{ order.order_id }} {{ order.total }} {{ order.currency }} {{ order.date }} "
            "{{ order.items[0].name }} | {{ order }}",
            order=placed,
        )
        assert text == "o-1 99.00 GBP 2026-03-02 Kettle | order o-1: 1 item, 99.00 GBP"

    def test_templates_on_carts_and_orders_pass_the_check_and_misspellings_do_not(self) -> None:
        delivery.check_variant(
            {
                "name": "A",
                "body": "{% for i in cart.items %}{{ i.name }}{% endfor %} {{ order.total }}",
            }
        )
        with pytest.raises(delivery.TemplateProblem, match="itemz"):
            delivery.check_variant({"name": "A", "body": "{{ cart.itemz }}"})
        with pytest.raises(delivery.TemplateProblem, match="totl"):
            delivery.check_variant({"name": "A", "body": "{{ order.totl }}"})

    def test_the_readmes_example_per_journey_passes_the_check(self) -> None:
        readme = (Path(__file__).parents[4] / "README.md").read_text()
        block = readme.split("One example per journey:\n\n```jinja\n", 1)[1].split("```", 1)[0]
        examples = dict(re.findall(r"\{# (\w+) #\}\n(.*?)(?=\n\{#|\Z)", block, re.S))
        assert set(examples) == {"welcome", "abandoned_cart", "re_engagement"}
        for trigger, body in examples.items():
            delivery.check_variant({"name": trigger, "body": body})
        cart_text = delivery.render(
            {"name": "A", "body": examples["abandoned_cart"]},
            {**delivery.SAMPLE_CONTEXT, "track": str},
            track=str,
        ).text
        assert "- Boots × 2: 21.00 EUR" in cart_text and "Total 42.00 EUR" in cart_text

    def test_a_record_cannot_be_changed_or_opened_up_by_a_template(self) -> None:
        cart = template_data.cart(self.CART)
        assert self.render("[{{ cart._fields }}]", cart=cart) == "[]"  # the sandbox hides it
        with pytest.raises(delivery.TemplateProblem, match="unsafe"):
            self.render("{{ cart._fields.clear() }}", cart=cart)
        with pytest.raises(AttributeError):
            cart.total = 0  # type: ignore[union-attr]


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


@pytest.mark.integration  # a real SMTP or HTTP server in process
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


@pytest.mark.integration  # a real SMTP or HTTP server in process
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
        standard = Webhook(webhooks.standard_secret(WEBHOOK_SECRET))
        assert standard.verify(request["body"], request["headers"])["text"] == "Sale!"
        assert request["headers"]["webhook-id"] == "m-1"
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
