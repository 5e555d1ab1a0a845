"""The supervised reader of the data key topic: it keeps the process's key cache current.

It reads `rapport.customer-keys` from the beginning without a consumer group (every
process needs every key, and a restart reads them all again), then follows it. On a
compacting broker the topic holds the latest record per key; on one that does not
compact (the dev broker) the cache gets the same result, as each record it reads
replaces the earlier one of its key.
"""

import asyncio
import logging

from aiokafka import AIOKafkaConsumer, TopicPartition

from rapport_events import shredding
from rapport_events.kafka import ensure_topics
from rapport_events.settings import KafkaSettings
from rapport_events.supervisor import Heartbeat, Supervised

log = logging.getLogger(__name__)
TASK_NAME = "customer-keys"
# The readers running in this process: one is enough, as they all fill the same cache.
_running: set["KeyReader"] = set()


class KeyReader:
    """Reads the key topic into `shredding.keys()` under a supervisor (shown in /readyz)."""

    def __init__(self, settings: KafkaSettings, client_id: str) -> None:
        self._settings = settings
        self._client_id = f"{client_id}-keys"
        self._supervised: Supervised | None = None
        self._heartbeat = Heartbeat()
        # Set once the reader has reached the end of the topic as it was when it started.
        self.caught_up = asyncio.Event()

    @property
    def supervised(self) -> Supervised | None:
        return self._supervised

    def start(self) -> "KeyReader":
        self._supervised = Supervised(
            TASK_NAME, self._run, policy=self._settings.restart_policy()
        ).start()
        _running.add(self)
        return self

    async def stop(self) -> None:
        _running.discard(self)
        if self._supervised is not None:
            await self._supervised.stop()
            self._supervised = None

    async def _run(self) -> None:
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self._settings.bootstrap_servers,
            client_id=self._client_id,
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            fetch_max_wait_ms=self._settings.consumer_fetch_max_wait_ms,
            request_timeout_ms=self._settings.request_timeout_ms,
        )
        await ensure_topics(self._settings, [self._settings.keys_topic])
        await consumer.start()
        try:
            partitions = await self._partitions(consumer)
            consumer.assign(partitions)
            await consumer.seek_to_beginning(*partitions)
            while True:
                batches = await consumer.getmany(timeout_ms=1000, max_records=5000)
                cache = shredding.keys()
                for records in batches.values():
                    for record in records:
                        cache.apply(record.key, record.value)
                self._heartbeat.beat()
                if not batches:
                    self.caught_up.set()
        finally:
            await consumer.stop()

    async def wait_caught_up(self, timeout: float) -> None:
        """Wait (bounded) until the reader has read the key topic as it was at its start."""
        async with asyncio.timeout(timeout):
            await self.caught_up.wait()

    async def _partitions(self, consumer: AIOKafkaConsumer) -> list[TopicPartition]:
        topic = self._settings.keys_topic
        for _ in range(50):
            found = consumer.partitions_for_topic(topic)
            if found:
                return [TopicPartition(topic, partition) for partition in sorted(found)]
            await consumer.topics()  # refreshes the metadata
            await asyncio.sleep(0.1)
        raise RuntimeError(f"topic {topic} has no partitions")


def start_unless_running(settings: KafkaSettings, client_id: str) -> KeyReader | None:
    """A reader of the key topic for a consumer that runs without a service's runtime (a
    replay, a test), unless one runs in this process already; the caller stops it."""
    if _running:
        return None
    return KeyReader(settings, client_id).start()
