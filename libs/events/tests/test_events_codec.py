"""CloudEvents binary mode on Kafka: what encode writes and what decode accepts."""

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from rapport_events import codec
from rapport_events.base import Event
from rapport_events.codec import (
    UPCASTERS,
    DecodeError,
    Envelope,
    KafkaMessage,
    decode,
    encode,
    register_upcaster,
)
from rapport_events.schemas import SCHEMA_DIR, load_schema, schema_path
from rapport_events.testing.examples import CUSTOMER_ID, example_events
from rapport_events.types import EVENT_MODELS, CustomerUpdated, OrderCompleted

EXAMPLES = example_events()
TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
TRACESTATE = "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE"


def envelope_of(event: Event, **fields: Any) -> Envelope:
    return Envelope(
        data=event,
        source="/services/profile",
        time=datetime(2026, 3, 14, 9, 27, 0, 123_456, tzinfo=UTC),
        **fields,
    )


def headers_of(message: KafkaMessage) -> dict[str, str]:
    names = [name for name, _ in message.headers]
    assert len(names) == len(set(names)), f"repeated headers: {names}"
    return {name: value.decode() for name, value in message.headers}


def message_with(message: KafkaMessage, **changes: str | None) -> KafkaMessage:
    """A copy of `message` with headers replaced (value None: removed)."""
    headers = dict(headers_of(message))
    for name, value in changes.items():
        name = name.replace("_dash_", "-")
        if value is None:
            headers.pop(name, None)
        else:
            headers[name] = value
    return KafkaMessage(message.key, message.value, [(n, v.encode()) for n, v in headers.items()])


def test_examples_cover_every_event_type() -> None:
    assert [type(event) for event in EXAMPLES] == list(EVENT_MODELS)


@pytest.mark.parametrize("event", EXAMPLES, ids=[e.TYPE for e in EXAMPLES])
class TestRoundTrip:
    """Every type survives encode → decode, and the wire form is plain CloudEvents."""

    def test_decode_returns_what_was_encoded(self, event: Event) -> None:
        envelope = envelope_of(event, traceparent=TRACEPARENT, tracestate=TRACESTATE)

        message = encode(envelope)
        decoded = decode(message.value, message.headers)

        assert decoded == envelope
        assert decoded.data == event
        assert type(decoded.data) is type(event)

    def test_headers_are_cloudevents_binary_mode(self, event: Event) -> None:
        envelope = envelope_of(event, traceparent=TRACEPARENT, tracestate=TRACESTATE)

        headers = headers_of(encode(envelope))

        assert headers["ce_specversion"] == "1.0"
        assert str(uuid.UUID(headers["ce_id"])) == headers["ce_id"] == envelope.id
        assert headers["ce_type"] == event.TYPE
        assert headers["ce_source"] == "/services/profile"
        assert datetime.fromisoformat(headers["ce_time"]) == envelope.time
        assert headers["ce_subject"] == CUSTOMER_ID
        assert headers["content-type"] == "application/json"
        assert headers["traceparent"] == TRACEPARENT
        assert headers["tracestate"] == TRACESTATE

    def test_key_is_the_customer_id(self, event: Event) -> None:
        message = encode(envelope_of(event))

        assert message.key == CUSTOMER_ID.encode() == headers_of(message)["ce_subject"].encode()

    def test_value_is_plain_json_data_without_the_type(self, event: Event) -> None:
        value = json.loads(encode(envelope_of(event)).value)

        assert value == event.model_dump(mode="json")
        assert "type" not in value
        assert value["customer_id"] == CUSTOMER_ID

    def test_value_matches_the_published_schema(self, event: Event) -> None:
        schema = load_schema(schema_path(SCHEMA_DIR, event.TYPE))
        value = json.loads(encode(envelope_of(event)).value)

        assert set(schema["required"]) <= set(value) <= set(schema["properties"])


class TestEncode:
    def test_ids_are_fresh_uuids(self) -> None:
        first, second = Envelope(EXAMPLES[0], "/services/profile"), Envelope(EXAMPLES[0], "/x")

        assert first.id != second.id
        assert uuid.UUID(first.id).version == 4

    def test_without_trace_context_no_trace_headers(self) -> None:
        headers = headers_of(encode(envelope_of(EXAMPLES[0])))

        assert "traceparent" not in headers
        assert "tracestate" not in headers

    def test_decimals_travel_as_exact_strings(self) -> None:
        order = next(e for e in EXAMPLES if isinstance(e, OrderCompleted))

        value = json.loads(encode(envelope_of(order)).value)

        assert value["revenue"] == "367.50"
        assert value["items"][0]["price"] == "349.00"


class TestDecode:
    @pytest.fixture
    def message(self) -> KafkaMessage:
        return encode(envelope_of(EXAMPLES[0], traceparent=TRACEPARENT))

    def test_trace_context_passes_through(self, message: KafkaMessage) -> None:
        envelope = decode(message.value, message.headers)

        assert envelope.traceparent == TRACEPARENT
        assert envelope.tracestate is None

    def test_a_message_without_ce_time_gets_now(self, message: KafkaMessage) -> None:
        before = datetime.now(UTC)

        envelope = decode(message.value, message_with(message, ce_time=None).headers)

        assert envelope.time >= before

    def test_unknown_fields_are_ignored(self, message: KafkaMessage) -> None:
        # An additive change from a newer producer must not break an older consumer.
        value = {**json.loads(message.value), "favourite_colour": "teal"}

        envelope = decode(json.dumps(value).encode(), message.headers)

        assert envelope.data == EXAMPLES[0]

    @pytest.mark.parametrize("name", ["ce_id", "ce_type", "ce_source"])
    def test_rejects_missing_headers(self, message: KafkaMessage, name: str) -> None:
        broken = message_with(message, **{name: None})

        with pytest.raises(DecodeError, match=f"missing CloudEvents headers: {name}"):
            decode(broken.value, broken.headers)

    def test_rejects_no_headers_at_all(self, message: KafkaMessage) -> None:
        with pytest.raises(DecodeError, match="missing"):
            decode(message.value, None)

    @pytest.mark.parametrize("version", ["0.3", "2.0", None])
    def test_rejects_other_spec_versions(self, message: KafkaMessage, version: str | None) -> None:
        broken = message_with(message, ce_specversion=version)

        with pytest.raises(DecodeError, match="ce_specversion"):
            decode(broken.value, broken.headers)

    @pytest.mark.parametrize("value", [b"not json", b"{", b"\xff\xfe", b""])
    def test_rejects_non_json(self, message: KafkaMessage, value: bytes) -> None:
        with pytest.raises(DecodeError):
            decode(value, message.headers)

    @pytest.mark.parametrize("value", [b"[1, 2]", b'"text"', b"42", b"null"])
    def test_rejects_json_that_is_not_an_object(self, message: KafkaMessage, value: bytes) -> None:
        with pytest.raises(DecodeError, match="JSON object"):
            decode(value, message.headers)

    def test_rejects_data_missing_a_required_field(self, message: KafkaMessage) -> None:
        value = json.loads(message.value)
        del value["customer_id"]

        with pytest.raises(DecodeError, match="invalid rapport.customer.registered.v2"):
            decode(json.dumps(value).encode(), message.headers)

    def test_rejects_data_of_the_wrong_type(self, message: KafkaMessage) -> None:
        broken = message_with(message, ce_type=OrderCompleted.TYPE)

        with pytest.raises(DecodeError, match="invalid rapport.order.completed.v1"):
            decode(broken.value, broken.headers)

    def test_rejects_an_unknown_type(self, message: KafkaMessage) -> None:
        broken = message_with(message, ce_type="rapport.unheard.of.v1")

        with pytest.raises(DecodeError):
            decode(broken.value, broken.headers)

    def test_rejects_a_bad_ce_time(self, message: KafkaMessage) -> None:
        broken = message_with(message, ce_time="yesterday")

        with pytest.raises(DecodeError, match="ce_time"):
            decode(broken.value, broken.headers)

    def test_decode_errors_are_value_errors(self) -> None:
        assert issubclass(DecodeError, ValueError)


@pytest.fixture
def upcasters() -> Iterator[dict[str, codec.Upcaster]]:
    """The upcaster registry; whatever a test registers is removed afterwards."""
    before = dict(UPCASTERS)
    yield UPCASTERS
    UPCASTERS.clear()
    UPCASTERS.update(before)


def old_message(event_type: str, data: dict[str, Any]) -> KafkaMessage:
    """A message as an older producer wrote it, of a type we no longer model."""
    headers = {
        "ce_specversion": "1.0",
        "ce_id": str(uuid.uuid4()),
        "ce_type": event_type,
        "ce_source": "/services/profile",
        "ce_time": "2025-01-02T03:04:05+00:00",
        "ce_subject": data.get("customer", ""),
        "content-type": "application/json",
    }
    return KafkaMessage(
        key=b"",
        value=json.dumps(data).encode(),
        headers=[(k, v.encode()) for k, v in headers.items()],
    )


class TestUpcasters:
    def test_an_old_type_is_read_as_its_successor(self, upcasters: dict) -> None:
        @register_upcaster("rapport.test.v0")
        def test_v0_to_customer_updated(data: dict[str, Any]) -> tuple[str, dict[str, Any]]:
            return CustomerUpdated.TYPE, {"customer_id": data["customer"], "changes": data["set"]}

        message = old_message("rapport.test.v0", {"customer": "c-1", "set": {"city": "Leeds"}})
        envelope = decode(message.value, message.headers)

        assert upcasters["rapport.test.v0"] is test_v0_to_customer_updated
        assert isinstance(envelope.data, CustomerUpdated)
        assert envelope.data.customer_id == "c-1"
        assert envelope.data.changes == {"city": "Leeds"}
        assert envelope.type == CustomerUpdated.TYPE

    def test_upcasters_chain(self, upcasters: dict) -> None:
        @register_upcaster("rapport.test.v0")
        def v0_to_v1(data: dict[str, Any]) -> tuple[str, dict[str, Any]]:
            return "rapport.test.v1", {**data, "set": {"city": data.pop("town")}}

        @register_upcaster("rapport.test.v1")
        def v1_to_current(data: dict[str, Any]) -> tuple[str, dict[str, Any]]:
            return CustomerUpdated.TYPE, {"customer_id": data["customer"], "changes": data["set"]}

        message = old_message("rapport.test.v0", {"customer": "c-2", "town": "York"})

        event = decode(message.value, message.headers).data

        assert isinstance(event, CustomerUpdated)
        assert (event.customer_id, event.changes) == ("c-2", {"city": "York"})

    def test_a_cycle_of_upcasters_ends_in_a_decode_error(self, upcasters: dict) -> None:
        upcasters["rapport.test.v0"] = lambda data: ("rapport.test.v1", data)
        upcasters["rapport.test.v1"] = lambda data: ("rapport.test.v0", data)
        message = old_message("rapport.test.v0", {"customer": "c-3"})

        with pytest.raises(DecodeError):
            decode(message.value, message.headers)

    def test_an_upcaster_that_fails_is_a_decode_error(self, upcasters: dict) -> None:
        @register_upcaster("rapport.test.v0")
        def needs_customer(data: dict[str, Any]) -> tuple[str, dict[str, Any]]:
            return CustomerUpdated.TYPE, {"customer_id": data["customer"], "changes": {}}

        message = old_message("rapport.test.v0", {"client": "c-4"})

        with pytest.raises(DecodeError, match="cannot upcast rapport.test.v0"):
            decode(message.value, message.headers)

    def test_invalid_upcast_data_is_a_decode_error(self, upcasters: dict) -> None:
        register_upcaster("rapport.test.v0")(lambda data: (CustomerUpdated.TYPE, data))
        message = old_message("rapport.test.v0", {"customer": "c-5"})

        with pytest.raises(DecodeError, match="invalid rapport.customer.updated.v1"):
            decode(message.value, message.headers)

    def test_a_current_type_cannot_be_upcast(self, upcasters: dict) -> None:
        with pytest.raises(ValueError, match="has a current model"):
            register_upcaster(CustomerUpdated.TYPE)

    def test_a_type_has_one_upcaster(self, upcasters: dict) -> None:
        register_upcaster("rapport.test.v0")(lambda data: (CustomerUpdated.TYPE, data))

        with pytest.raises(ValueError, match="already registered"):
            register_upcaster("rapport.test.v0")(lambda data: (CustomerUpdated.TYPE, data))

    def test_registrations_do_not_outlive_their_test(self) -> None:
        assert not any(old_type.startswith("rapport.test.") for old_type in UPCASTERS)
