"""Webhook signatures as receivers check them, including Standard Webhooks' own library."""

import pytest
from standardwebhooks import Webhook, WebhookVerificationError

from rapport_events import webhooks

SECRET = "partner-webhook-secret-of-32-chars"
BODY = b'{"customer_ref":"r-1","kind":"erasure"}'


class TestRapportSignature:
    def test_the_body_under_the_secret_verifies(self) -> None:
        signature = webhooks.sign(SECRET, BODY)

        assert signature.startswith("sha256=") and len(signature) == 7 + 64
        assert webhooks.verify(SECRET, BODY, signature)

    @pytest.mark.parametrize(("secret", "body"), [("another-secret", BODY), (SECRET, BODY + b" ")])
    def test_another_secret_or_body_does_not(self, secret: str, body: bytes) -> None:
        assert not webhooks.verify(secret, body, webhooks.sign(SECRET, BODY))


class TestStandardWebhooks:
    def test_the_reference_library_verifies_what_we_send(self) -> None:
        headers = webhooks.signed_headers(SECRET, BODY, "notice-1")

        receiver = Webhook(webhooks.standard_secret(SECRET))

        assert receiver.verify(BODY, headers) == {"customer_ref": "r-1", "kind": "erasure"}
        assert headers["webhook-id"] == "notice-1"
        assert webhooks.verify(SECRET, BODY, headers[webhooks.SIGNATURE_HEADER])

    def test_the_reference_library_refuses_a_changed_body_or_an_old_delivery(self) -> None:
        receiver = Webhook(webhooks.standard_secret(SECRET))
        fresh = webhooks.signed_headers(SECRET, BODY, "notice-2")
        stale = webhooks.signed_headers(SECRET, BODY, "notice-2", timestamp=1_000_000)

        with pytest.raises(WebhookVerificationError):
            receiver.verify(BODY + b" ", fresh)
        with pytest.raises(WebhookVerificationError):
            receiver.verify(BODY, stale)

    def test_our_check_takes_the_window_and_the_signature_list_into_account(self) -> None:
        headers = webhooks.signed_headers(SECRET, BODY, "notice-3", timestamp=1_700_000_000)
        rotated = {**headers, "webhook-signature": "v1,b2xk " + headers["webhook-signature"]}

        assert webhooks.verify_standard(SECRET, BODY, rotated, now=1_700_000_100)
        assert not webhooks.verify_standard(SECRET, BODY, headers, now=1_700_000_301)
        assert not webhooks.verify_standard("another-secret", BODY, headers, now=1_700_000_000)
        assert not webhooks.verify_standard(
            SECRET, BODY, {**headers, "webhook-id": "notice-4"}, now=1_700_000_000
        )
        assert not webhooks.verify_standard(
            SECRET, BODY, {**headers, "webhook-timestamp": "soon"}, now=1_700_000_000
        )


class TestRetries:
    @pytest.mark.parametrize(
        ("status", "for_good"),
        [(None, False), (200, False), (400, True), (401, True), (404, True), (408, False)]
        + [(409, False), (425, False), (429, False), (500, False), (503, False)],
    )
    def test_only_a_refusal_of_the_delivery_itself_is_for_good(
        self, status: int | None, for_good: bool
    ) -> None:
        assert webhooks.refused_for_good(status) is for_good

    def test_the_delay_doubles_up_to_the_ceiling(self) -> None:
        delays = [webhooks.retry_delay(n, 5, 60).total_seconds() for n in range(1, 7)]

        assert delays == [5, 10, 20, 40, 60, 60]
