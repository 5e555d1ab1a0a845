"""The event plumbing of one service: producer, outbox relay and consumer, with readiness."""

import asyncio
import logging
from collections.abc import Mapping
from typing import Any, Protocol

from aiokafka import AIOKafkaProducer
from sqlalchemy.ext.asyncio import AsyncEngine

from rapport_events import inbox, outbox
from rapport_events.aio import cancel_and_wait
from rapport_events.consumer import ConsumerRunner, HandlerMap
from rapport_events.db import (
    checkpoint_if_wanted,
    checkpoint_wanted,
    is_sqlite,
    ping,
    session_factory,
)
from rapport_events.heap import freeze_startup_heap
from rapport_events.kafka import create_producer, ensure_topics
from rapport_events.key_reader import KeyReader
from rapport_events.observability import RuntimeMetrics
from rapport_events.relay import OutboxRelay
from rapport_events.relay_lock import relay_lock_for
from rapport_events.retry import until_done
from rapport_events.settings import KafkaSettings
from rapport_events.supervisor import Periodic, Supervised
from rapport_events.tracing import untraced

log = logging.getLogger(__name__)
INBOX_PURGE_INTERVAL_S = 600.0
WAL_CHECKPOINT_INTERVAL_S = 1.0


class HasSupervised(Protocol):
    """A background part (relay, consumer, worker) with its supervised task, once started."""

    @property
    def supervised(self) -> Supervised | None: ...


class EventRuntime:
    """Connects to the broker in the background so a service starts while the broker is away."""

    def __init__(
        self,
        *,
        service: str,
        engine: AsyncEngine,
        settings: KafkaSettings,
        handlers: HandlerMap | None = None,
        dependencies: Mapping[str, Any] | None = None,
    ) -> None:
        self.service = service
        self.engine = engine
        self.settings = settings
        outbox.configure(settings)
        self.sessions = session_factory(engine, on_outbox_commit=self._wake_relay)
        self._handlers = handlers or {}
        self._dependencies = dependencies or {}
        self.producer: AIOKafkaProducer | None = None
        self.relay: OutboxRelay | None = None
        self.consumer: ConsumerRunner | None = None
        self.key_reader: KeyReader | None = None
        self._connect_task: asyncio.Task[None] | None = None
        self.workers: list[HasSupervised] = []
        self._inbox_purge: Periodic | None = None
        self._checkpoints: Periodic | None = None
        self.connected = asyncio.Event()
        self.metrics = RuntimeMetrics(self)

    @property
    def source(self) -> str:
        """The CloudEvents `ce_source` of this service's events."""
        return f"/services/{self.service}"

    def _wake_relay(self) -> None:
        if self.relay is not None:
            self.relay.wake()

    async def start(self) -> None:
        """Begin connecting; returns at once."""
        freeze_startup_heap()  # the service is built by now: its modules and app stay for good
        self.metrics.start()
        if self._handlers:
            self._inbox_purge = Periodic(
                f"{self.service}-inbox-purge",
                self._purge_inbox,
                INBOX_PURGE_INTERVAL_S,
                policy=self.settings.restart_policy(),
                repeat_while_busy=False,
            ).start()
            self.watch(self._inbox_purge)
        if is_sqlite(self.engine):
            # An erasure's checkpoint that found readers is finished here, off its path.
            self._checkpoints = Periodic(
                f"{self.service}-wal-checkpoint",
                self._checkpoint_wal,
                WAL_CHECKPOINT_INTERVAL_S,
                policy=self.settings.restart_policy(),
                repeat_while_busy=False,
            ).start()
            self.watch(self._checkpoints)
        self._connect_task = asyncio.create_task(self._connect(), name=f"{self.service}-connect")

    async def _checkpoint_wal(self) -> int:
        """Empty SQLite's write-ahead log of an erasure's rows; 1 when it did, else 0."""
        if not checkpoint_wanted(self.engine):
            return 0
        with untraced():
            return int(await checkpoint_if_wanted(self.engine))

    async def _purge_inbox(self) -> int:
        """Forget applied event ids past their retention (the log no longer redelivers them)."""
        group = self.settings.consumer_group or self.service
        with untraced():
            return await inbox.purge_expired(self.sessions, group, self.settings.inbox_retention_s)

    async def _connect(self) -> None:
        retrying = until_done(
            errors=Exception,
            first_wait_s=0.2,
            max_wait_s=self.settings.relay_max_backoff_s,
            log=log,
            what=f"{self.service} reaching the broker",
            on_failure=lambda _error: self._close_clients(),
        )
        await retrying(self._connect_once)
        self.connected.set()

    async def _connect_once(self) -> None:
        await ensure_topics(
            self.settings,
            [
                self.settings.topic,
                self.settings.dead_letter_topic(self.service),
                self.settings.keys_topic,
            ],
        )
        self.key_reader = KeyReader(self.settings, client_id=self.service).start()
        producer = create_producer(self.settings, client_id=self.service)
        self.producer = producer
        await producer.start()
        lock = relay_lock_for(
            self.engine,
            check_s=self.settings.relay_lock_check_s,
            idle_timeout_s=self.settings.relay_lock_idle_timeout_s,
        )
        self.relay = OutboxRelay(self.sessions, producer, self.settings, lock=lock)
        self.relay.start()
        if self._handlers:
            consumer = ConsumerRunner(
                service=self.service,
                settings=self.settings,
                session_factory=self.sessions,
                handlers=self._handlers,
                producer=producer,
                dependencies=self._dependencies,
            )
            self.consumer = consumer
            await consumer.start()

    async def _close_clients(self) -> None:
        if self.key_reader is not None:
            await self.key_reader.stop()
            self.key_reader = None
        if self.consumer is not None:
            await self.consumer.stop()
            self.consumer = None
        if self.relay is not None:
            await self.relay.stop()
            self.relay = None
        if self.producer is not None:
            await self.producer.stop()
            self.producer = None

    def relay_role(self) -> str:
        """`active` (this replica publishes the outbox), `standby` (another one does), or
        `starting` (not connected to the broker yet)."""
        return self.relay.role if self.relay is not None else "starting"

    def watch(self, *workers: "HasSupervised") -> None:
        """Report these background workers' problems in /readyz and their restarts in metrics."""
        self.workers.extend(workers)

    def supervised(self) -> list[Supervised]:
        """Every supervised task of this service: relay, consumer and workers."""
        parts: list[HasSupervised | None] = [
            *self.workers,
            self.key_reader,
            self.relay,
            self.consumer,
        ]
        return [part.supervised for part in parts if part is not None and part.supervised]

    def problems(self) -> dict[str, str]:
        """What keeps the event plumbing from working, by task; empty when all is well."""
        found = {task.name: problem for task in self.supervised() if (problem := task.problem())}
        if self.connected.is_set():
            # Connected, so both were started: one without its task was stopped from outside.
            if self.relay is not None and self.relay.supervised is None:
                found["outbox-relay"] = "stopped"
            if self.consumer is not None and self.consumer.supervised is None:
                found[f"consumer-{self.service}"] = "stopped"
        if (
            self.connected.is_set()
            and self.consumer is not None
            and not self.consumer.joined.is_set()
        ):
            found.setdefault(f"consumer-{self.service}", "joining its consumer group")
        return found

    async def check_tasks(self) -> None:
        """Raise unless every background task runs and makes progress."""
        if problems := self.problems():
            raise RuntimeError("; ".join(f"{name}: {why}" for name, why in problems.items()))

    async def stop(self) -> None:
        """Stop consuming, stop the relay, flush the producer (services stop their workers)."""
        if self._inbox_purge is not None:
            await self._inbox_purge.stop()
            self._inbox_purge = None
        if self._checkpoints is not None:
            await self._checkpoints.stop()
            self._checkpoints = None
        self.workers = []
        await self.metrics.stop()
        await cancel_and_wait(self._connect_task)
        self._connect_task = None
        await self._close_clients()
        self.connected.clear()

    async def check_database(self) -> None:
        """Raise unless the database answers."""
        async with asyncio.timeout(2.0):
            await ping(self.engine)

    async def check_broker(self) -> None:
        """Raise unless the broker answers a metadata request."""
        if self.producer is None or not self.connected.is_set():
            raise ConnectionError("not connected to the broker yet")
        async with asyncio.timeout(2.0):
            await self.producer.client.fetch_all_metadata()
