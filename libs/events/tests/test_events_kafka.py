"""Topics as the services create them on the real broker."""

from typing import Any

import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from rapport_events.kafka import ensure_topics
from rapport_events.settings import KafkaSettings


async def _topics(settings: KafkaSettings) -> list[str]:
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.bootstrap_servers)
    await admin.start()
    try:
        return list(await admin.list_topics())
    finally:
        await admin.close()


class TestDeadLetterTopic:
    async def test_is_created_with_a_retention_and_the_log_without(
        self, kafka_settings: KafkaSettings, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        # The dev broker does not answer DescribeConfigs: read what was asked for on the way.
        asked: dict[str, dict[str, str]] = {}
        create_topics = AIOKafkaAdminClient.create_topics

        async def recording(admin: AIOKafkaAdminClient, topics: list[NewTopic], **kw: Any) -> Any:
            asked.update({topic.name: topic.topic_configs for topic in topics})
            return await create_topics(admin, topics, **kw)

        monkeypatch.setattr(AIOKafkaAdminClient, "create_topics", recording)
        settings = kafka_settings.model_copy(update={"dead_letter_retention_ms": 3_600_000})
        dead_letters = settings.dead_letter_topic("profile")

        await ensure_topics(settings, [settings.topic, dead_letters])

        assert asked == {settings.topic: {}, dead_letters: {"retention.ms": "3600000"}}
        assert {settings.topic, dead_letters} <= set(await _topics(settings))
