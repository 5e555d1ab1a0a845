"""In-memory stand-ins for unit tests: a producer and a log that records what was sent."""

import asyncio
from dataclasses import dataclass, field
from typing import Any

from aiokafka.producer.message_accumulator import BatchBuilder
from aiokafka.record.default_records import DefaultRecordBatch

from rapport_events.codec import Envelope, decode


@dataclass
class SentMessage:
    topic: str
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]]
    partition: int | None = None

    def envelope(self) -> Envelope:
        return decode(self.value, self.headers)


@dataclass
class FakeProducer:
    """Quacks like AIOKafkaProducer's send, send_batch and partitions_for.

    `fail_next` makes the next sends raise. A record batch goes through `send` record by
    record (so a subclass refuses single records), and like a broker it keeps none of a
    batch that is refused (a record raising at send, or refused for good at delivery).
    """

    sent: list[SentMessage] = field(default_factory=list)
    fail_next: int = 0
    partitions: int = 3
    batches: int = 0

    async def partitions_for(self, topic: str) -> set[int]:
        return set(range(self.partitions))

    async def send_batch(
        self, batch: BatchBuilder, topic: str, *, partition: int
    ) -> "asyncio.Future[None]":
        mark = len(self.sent)
        futures = []
        try:
            for record in DefaultRecordBatch(bytes(batch._build())):
                headers = [(name, value or b"") for name, value in record.headers]
                futures.append(
                    await self.send(topic, record.value, record.key, headers, partition=partition)
                )
        except BaseException:
            del self.sent[mark:]
            raise
        self.batches += 1
        kept = self.sent[mark:]
        delivery: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        def answer(_: object) -> None:
            if delivery.done() or not all(future.done() for future in futures):
                return
            errors = [error for f in futures if (error := f.exception()) is not None]
            if not errors:
                delivery.set_result(None)
                return
            if _refused_for_good(errors[0]):
                # The broker kept none of it.
                self.sent[:] = [m for m in self.sent if not any(m is k for k in kept)]
            delivery.set_exception(errors[0])

        for future in futures:
            future.add_done_callback(answer)
        if not futures:
            delivery.set_result(None)
        return delivery

    async def send(
        self,
        topic: str,
        value: bytes | None = None,
        key: bytes | None = None,
        headers: list[tuple[str, bytes]] | None = None,
        partition: int | None = None,
        **_: Any,
    ) -> "asyncio.Future[None]":
        if self.fail_next:
            self.fail_next -= 1
            raise ConnectionError("fake broker unavailable")
        self.sent.append(SentMessage(topic, key, value, list(headers or []), partition))
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        future.set_result(None)
        return future

    def envelopes(self, topic: str | None = None) -> list[Envelope]:
        return [m.envelope() for m in self.sent if topic is None or m.topic == topic]


def _refused_for_good(error: BaseException) -> bool:
    from rapport_events.relay import is_permanent  # the relay imports nothing from here

    return is_permanent(error)


@dataclass
class FakeRecord:
    """Quacks like aiokafka's ConsumerRecord."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]]
