"""In-memory stand-ins for unit tests: a producer and a log that records what was sent."""

import asyncio
from dataclasses import dataclass, field
from typing import Any

from rapport_events.codec import Envelope, decode


@dataclass
class SentMessage:
    topic: str
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]]

    def envelope(self) -> Envelope:
        return decode(self.value, self.headers)


@dataclass
class FakeProducer:
    """Quacks like AIOKafkaProducer.send; `fail_next` makes the next sends raise."""

    sent: list[SentMessage] = field(default_factory=list)
    fail_next: int = 0

    async def send(
        self,
        topic: str,
        value: bytes | None = None,
        key: bytes | None = None,
        headers: list[tuple[str, bytes]] | None = None,
        **_: Any,
    ) -> "asyncio.Future[None]":
        if self.fail_next:
            self.fail_next -= 1
            raise ConnectionError("fake broker unavailable")
        self.sent.append(SentMessage(topic, key, value, list(headers or [])))
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        future.set_result(None)
        return future

    def envelopes(self, topic: str | None = None) -> list[Envelope]:
        return [m.envelope() for m in self.sent if topic is None or m.topic == topic]


@dataclass
class FakeRecord:
    """Quacks like aiokafka's ConsumerRecord."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]]
