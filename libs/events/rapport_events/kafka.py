"""Kafka clients built from KafkaSettings."""

import asyncio
import logging

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from rapport_events.settings import KEYS_DELETE_RETENTION_MS, KafkaSettings

log = logging.getLogger(__name__)
TOPIC_ALREADY_EXISTS = TopicAlreadyExistsError.errno
# Room above `max_message_bytes` for the trace headers the relay sets on a stored row;
# the default limit plus this is aiokafka's default `max_request_size` (1048576).
PRODUCER_HEADROOM_BYTES = 48_576


def create_producer(settings: KafkaSettings, client_id: str) -> AIOKafkaProducer:
    """A producer that waits for all in-sync replicas; idempotence per settings.

    Its size check lets through every message `outbox.add` accepted.
    """
    return AIOKafkaProducer(
        bootstrap_servers=settings.bootstrap_servers,
        client_id=client_id,
        acks="all",
        enable_idempotence=settings.enable_idempotence,
        linger_ms=2,
        max_request_size=settings.max_message_bytes + PRODUCER_HEADROOM_BYTES,
        request_timeout_ms=settings.request_timeout_ms,
        retry_backoff_ms=200,
    )


def _topic_configs(settings: KafkaSettings, name: str) -> dict[str, str]:
    if name == settings.keys_topic:
        return {
            "cleanup.policy": "compact",
            "delete.retention.ms": str(KEYS_DELETE_RETENTION_MS),
        }
    if name.startswith(settings.dead_letter_topic("")):
        return {"retention.ms": str(settings.dead_letter_retention_ms)}
    return {}


async def ensure_topics(settings: KafkaSettings, names: list[str]) -> None:
    """Create the topics that do not exist yet (idempotent).

    A dead-letter topic keeps its messages for `dead_letter_retention_ms` (set at creation;
    an existing topic keeps its own configuration).
    """
    admin = AIOKafkaAdminClient(
        bootstrap_servers=settings.bootstrap_servers,
        request_timeout_ms=settings.request_timeout_ms,
    )
    try:
        await admin.start()
        topics = [
            NewTopic(
                name,
                settings.partitions,
                settings.replication_factor,
                topic_configs=_topic_configs(settings, name),
            )
            for name in names
        ]
        async with asyncio.timeout(settings.send_timeout_s):
            response = await admin.create_topics(topics)
        for name, code, *_ in response.topic_errors:
            if code not in (0, TOPIC_ALREADY_EXISTS):
                log.warning("creating topic %s failed with error code %s", name, code)
    finally:
        await admin.close()
