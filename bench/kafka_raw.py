"""The baselines: plain aiokafka, tuned the usual way, with none of Rapport's machinery."""

import asyncio
import statistics
import struct
import time
import uuid
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from rapport_events.aio import cancel_and_wait
from rapport_events.codec import Envelope, KafkaMessage, encode
from rapport_events.kafka import create_producer
from rapport_events.settings import KafkaSettings
from rapport_events.types import CustomerRegistered

BATCH = 500  # messages in flight per produce batch, as the relay's default batch


@dataclass(frozen=True)
class Message:
    key: bytes
    value: bytes
    headers: list[tuple[str, bytes]]

    @property
    def size(self) -> int:
        """Bytes on the wire that the application chose: key, value, header names and values."""
        return len(self.key) + len(self.value) + sum(len(n) + len(v) for n, v in self.headers)


def plain_messages(count: int, size: int, keys: int = 100) -> list[Message]:
    """`count` messages of `size` value bytes, spread over `keys` keys, no headers."""
    payload = b"x" * size
    return [Message(f"customer-{i % keys}".encode(), payload, []) for i in range(count)]


def sample_event(i: int) -> CustomerRegistered:
    """A customer.registered as profile writes it, filled in the way a real sign-up is."""
    return CustomerRegistered(
        customer_id=str(uuid.uuid4()),
        email=f"ada.lovelace.{i}@analytical-engines.example.com",
        phone="+441632960961",
        first_name="Augusta Ada",
        last_name="King-Noel, Countess of Lovelace",
        birth_date="1815-12-10",
        gender="female",
        income_band="100k-150k",
        education="postgraduate",
        country="GB",
        city="London",
        acquisition_channel="newsletter-referral",
        social_handles={"twitter": "@ada_lovelace", "instagram": "ada.lovelace.1815"},
        external_ids={
            "shopify": f"gid://shopify/Customer/{7_000_000_000 + i}",
            "salesforce": f"0035g00000{i:08d}AAA",
            "zendesk": f"{90_000_000 + i}",
        },
    )


def sample_cloudevent(i: int) -> KafkaMessage:
    """The Kafka message the relay sends for sample_event(i), with a trace context."""
    return encode(
        Envelope(
            data=sample_event(i),
            source="/services/profile",
            traceparent=f"00-{uuid.uuid4().hex}-{uuid.uuid4().hex[:16]}-01",
        )
    )


def as_message(message: KafkaMessage) -> Message:
    return Message(message.key, message.value, list(message.headers))


async def produce(
    producer: AIOKafkaProducer, topic: str, messages: list[Message], timeout: float
) -> float:
    """Send in batches of BATCH, awaiting each batch's delivery; returns messages per second."""
    started = time.perf_counter()
    async with asyncio.timeout(timeout):
        for first in range(0, len(messages), BATCH):
            deliveries = [
                await producer.send(topic, value=m.value, key=m.key, headers=m.headers)
                for m in messages[first : first + BATCH]
            ]
            await asyncio.gather(*deliveries)
    return len(messages) / (time.perf_counter() - started)


async def produce_rate(
    settings: KafkaSettings, topic: str, messages: list[Message], timeout: float
) -> float:
    """A fresh producer (same settings as the services'), a warm-up batch, then produce()."""
    producer = create_producer(settings, client_id="bench-raw")
    await producer.start()
    try:
        await produce(producer, topic, messages[:BATCH], timeout)
        return await produce(producer, topic, messages, timeout)
    finally:
        await producer.stop()


async def _read(reader: AIOKafkaConsumer, count: int, max_records: int) -> float:
    """getmany until `count` records are in; returns the perf_counter of the last."""
    await _read_count(reader, count, max_records=max_records)
    return time.perf_counter()


async def _trip(
    producer: AIOKafkaProducer,
    reader: AIOKafkaConsumer,
    topic: str,
    messages: list[Message],
    max_records: int,
    timeout: float,
) -> float:
    started = time.perf_counter()
    reading = asyncio.create_task(_read(reader, len(messages), max_records))
    try:
        await produce(producer, topic, messages, timeout)
        async with asyncio.timeout(timeout):
            last = await reading
    finally:
        await cancel_and_wait(reading)
    return len(messages) / (last - started)


async def produce_consume_rate(
    settings: KafkaSettings, topic: str, messages: list[Message], timeout: float
) -> float:
    """Produce as produce() does while a getmany reader (assigned, no group join) drains the
    topic; messages per second from the first send to the last read, after a warm-up batch."""
    producer = create_producer(settings, client_id="bench-raw-pipeline")
    reader = AIOKafkaConsumer(
        bootstrap_servers=settings.bootstrap_servers,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    await producer.start()
    await reader.start()
    try:
        reader.assign([TopicPartition(topic, p) for p in range(settings.partitions)])
        max_records = settings.consumer_max_records
        await _trip(producer, reader, topic, messages[:BATCH], max_records, timeout)
        return await _trip(producer, reader, topic, messages, max_records, timeout)
    finally:
        await reader.stop()
        await producer.stop()


def consumer(settings: KafkaSettings, group: str) -> AIOKafkaConsumer:
    return AIOKafkaConsumer(
        settings.topic,
        bootstrap_servers=settings.bootstrap_servers,
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        session_timeout_ms=settings.session_timeout_ms,
        heartbeat_interval_ms=settings.heartbeat_interval_ms,
    )


async def consume_rate(settings: KafkaSettings, total: int, skip: int, timeout: float) -> float:
    """Read `total` records with getmany from all partitions (assigned, so no group join);
    messages per second after the first `skip`, as the consumer runner is timed."""
    reader = AIOKafkaConsumer(
        bootstrap_servers=settings.bootstrap_servers,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    await reader.start()
    try:
        reader.assign([TopicPartition(settings.topic, p) for p in range(settings.partitions)])
        async with asyncio.timeout(timeout):
            # Exactly `skip` records first, so the clock never starts after a fetch that
            # already held every record (which would time nothing).
            received = await _read_count(reader, skip, max_records=skip)
            started = time.perf_counter()
            counted = await _read_count(
                reader, total - received, max_records=settings.consumer_max_records
            )
        elapsed = time.perf_counter() - started
        return counted / elapsed if elapsed > 0 else float("inf")
    finally:
        await reader.stop()


async def _read_count(reader: AIOKafkaConsumer, count: int, *, max_records: int) -> int:
    """getmany until `count` records are in, at most `max_records` a call and never more
    than `count` in all; returns how many were read."""
    received = 0
    while received < count:
        batches = await reader.getmany(
            timeout_ms=200, max_records=min(max_records, count - received)
        )
        received += sum(len(records) for records in batches.values())
    return received


async def consume_rate_median(
    settings: KafkaSettings, total: int, skip: int, repeats: int, timeout: float
) -> tuple[float, list[float]]:
    rates = [await consume_rate(settings, total, skip, timeout) for _ in range(repeats)]
    return statistics.median(rates), rates


async def round_trip_latencies(
    settings: KafkaSettings, rate: float, count: int, warmup: int, size: int, timeout: float
) -> list[float]:
    """Seconds from send to getmany, one message every 1/rate s, after `warmup` messages
    have made the round trip (so the group join is not measured)."""
    producer = create_producer(settings, client_id="bench-raw-latency")
    reader = consumer(settings, f"bench-latency-{uuid.uuid4().hex[:8]}")
    await producer.start()
    await reader.start()
    latencies: list[float] = []
    seen = 0
    warmed_up = asyncio.Event()
    padding = b"x" * max(size - 12, 0)

    async def read() -> None:
        nonlocal seen
        while seen < warmup + count:
            batches = await reader.getmany(timeout_ms=200)
            now = time.perf_counter()
            for records in batches.values():
                for record in records:
                    seen += 1
                    if seen >= warmup:
                        warmed_up.set()
                    sequence, sent = struct.unpack_from("!id", record.value or b"")
                    if sequence >= warmup:
                        latencies.append(now - sent)

    async def send(sequence: int) -> None:
        value = struct.pack("!id", sequence, time.perf_counter()) + padding
        await producer.send(settings.topic, value=value, key=str(sequence).encode())

    try:
        async with asyncio.timeout(timeout):
            reading = asyncio.create_task(read())
            try:
                for sequence in range(warmup):
                    await send(sequence)
                await warmed_up.wait()
                started = time.perf_counter()
                for i in range(count):
                    delay = started + i / rate - time.perf_counter()
                    if delay > 0:
                        await asyncio.sleep(delay)
                    await send(warmup + i)
                await reading
            finally:
                await cancel_and_wait(reading)
    finally:
        await reader.stop()
        await producer.stop()
    return latencies
