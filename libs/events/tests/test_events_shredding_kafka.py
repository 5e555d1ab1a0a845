"""Sealed events on the real broker: a consumer waits for a data key it has not read, and
reads the personal fields of a customer whose key was tombstoned as erased."""

import asyncio
import json
import uuid
from collections.abc import Iterator

import pytest
from aiokafka import AIOKafkaProducer

from rapport_events import outbox, shredding
from rapport_events.codec import Envelope, context_headers
from rapport_events.consumer import ConsumerRunner
from rapport_events.db import SessionFactory
from rapport_events.kafka import create_producer, ensure_topics
from rapport_events.settings import KafkaSettings
from rapport_events.testing.harness import until
from rapport_events.types import InteractionTracked

pytestmark = [pytest.mark.faults, pytest.mark.timeout(90)]
URL = "https://shop.example/account?email=ada@example.com"


@pytest.fixture
def fresh_keys() -> Iterator[shredding.KeyCache]:
    """A key cache that has read nothing yet, as in a process that just started."""
    shredding._keys = None
    yield shredding.keys()
    shredding._keys = None
    outbox.configure(KafkaSettings())


def sealed_message(key: shredding.DataKey) -> tuple[bytes, list[tuple[str, bytes]]]:
    """A page view sealed under `key`, as the outbox writes it."""
    event = InteractionTracked(customer_id=key.customer_id, kind="page", url=URL)
    message = outbox._sealed(Envelope(event, "/services/test"), event.PERSONAL, key)
    return message.value, message.headers


class Applied:
    """The page views a consumer applied, as its handler got them."""

    def __init__(self) -> None:
        self.events: list[InteractionTracked] = []

    async def handler(self, event: InteractionTracked) -> None:
        self.events.append(event)


async def consumer_of(
    settings: KafkaSettings, sessions: SessionFactory, applied: Applied
) -> tuple[ConsumerRunner, AIOKafkaProducer]:
    producer = create_producer(settings, client_id="shred-test")
    await producer.start()
    runner = ConsumerRunner(
        service=f"shred-{uuid.uuid4().hex[:6]}",
        settings=settings,
        session_factory=sessions,
        handlers={InteractionTracked: [applied.handler]},
        producer=producer,
    )
    await runner.start()
    return runner, producer


class TestConsumerAndDataKeys:
    async def test_an_event_waits_for_its_key_and_is_applied_in_clear_once_it_is_read(
        self,
        kafka_settings: KafkaSettings,
        event_sessions: SessionFactory,
        fresh_keys: shredding.KeyCache,
    ) -> None:
        await ensure_topics(kafka_settings, [kafka_settings.topic, kafka_settings.keys_topic])
        applied = Applied()
        runner, producer = await consumer_of(kafka_settings, event_sessions, applied)
        try:
            key = shredding.new_data_key(f"c-{uuid.uuid4().hex[:6]}")
            plain = InteractionTracked(customer_id=key.customer_id, kind="page", name="first")
            envelope = Envelope(plain, "/services/test")
            await producer.send_and_wait(
                kafka_settings.topic,
                plain.model_dump_json().encode(),
                key=key.customer_id.encode(),
                headers=context_headers(envelope),
            )
            await until(lambda: len(applied.events) == 1, timeout=30, what="the plain event")
            value, headers = sealed_message(key)
            await producer.send_and_wait(
                kafka_settings.topic, value, key=key.customer_id.encode(), headers=headers
            )

            await asyncio.sleep(1.5)  # many fetches: the key is still unknown
            assert len(applied.events) == 1, "applied without its personal fields"

            await producer.send_and_wait(
                kafka_settings.keys_topic, fresh_keys.keks.wrap(key), key=key.kid.encode()
            )
            await until(lambda: len(applied.events) == 2, timeout=15, what="the sealed event")
        finally:
            await runner.stop()
            await producer.stop()

        assert applied.events[1].url == URL

    async def test_the_event_of_an_erased_customer_is_applied_without_personal_fields(
        self,
        kafka_settings: KafkaSettings,
        event_sessions: SessionFactory,
        fresh_keys: shredding.KeyCache,
    ) -> None:
        await ensure_topics(kafka_settings, [kafka_settings.topic, kafka_settings.keys_topic])
        key = shredding.new_data_key(f"c-{uuid.uuid4().hex[:6]}")
        producer = create_producer(kafka_settings, client_id="shred-test-writer")
        await producer.start()
        try:
            keys_topic = kafka_settings.keys_topic
            await producer.send_and_wait(
                keys_topic, fresh_keys.keks.wrap(key), key=key.kid.encode()
            )
            value, headers = sealed_message(key)
            await producer.send_and_wait(
                kafka_settings.topic, value, key=key.customer_id.encode(), headers=headers
            )
            await producer.send_and_wait(keys_topic, None, key=key.kid.encode())
            marker = shredding.erased_marker(key.customer_id)
            await producer.send_and_wait(keys_topic, marker, key=key.customer_id.encode())
        finally:
            await producer.stop()
        assert URL.encode() not in value and json.loads(value)["sealed"]

        applied = Applied()
        runner, producer = await consumer_of(kafka_settings, event_sessions, applied)
        try:
            await until(lambda: applied.events, timeout=30, what="the erased customer's event")
        finally:
            await runner.stop()
            await producer.stop()

        [event] = applied.events
        assert (event.url, event.properties, event.kind) == (None, {}, "page")
