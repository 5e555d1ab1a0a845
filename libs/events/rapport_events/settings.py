"""Kafka settings shared by every service (env prefix KAFKA_)."""

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from rapport_events.shredding import DEVELOPMENT_KEK, KEYS_TOPIC, parse_keks
from rapport_events.supervisor import RestartPolicy

CUSTOMER_EVENTS_TOPIC = "rapport.customer-events"
# Compaction removes a tombstone this long after it; a fresh reader must still see it, so
# the key topic keeps them (almost) for ever: about 100 years.
KEYS_DELETE_RETENTION_MS = 100 * 365 * 86_400_000


class KafkaSettings(BaseSettings):
    """Where the log lives and how clients talk to it."""

    model_config = SettingsConfigDict(env_prefix="KAFKA_", extra="ignore")

    bootstrap_servers: str = "127.0.0.1:9092"
    topic: str = CUSTOMER_EVENTS_TOPIC
    # The consumer group (and inbox name) of the service; empty means the service's name.
    consumer_group: str = ""
    partitions: int = 6
    replication_factor: int = 1
    # Off for the dev broker (Tansu rejects InitProducerId); on against real Kafka.
    enable_idempotence: bool = False
    session_timeout_ms: int = 10_000
    heartbeat_interval_ms: int = 1_000
    request_timeout_ms: int = 10_000
    send_timeout_s: float = 10.0
    consumer_max_records: int = 500
    # Records applied in one transaction: more means fewer commits, but on SQLite the
    # transaction holds the only write lock, and requests that write wait behind it for
    # up to the time budget.
    consumer_transaction_max_records: int = 500
    consumer_transaction_max_s: float = 0.05
    # How long the broker may hold a fetch that found nothing. Kafka answers as soon as a
    # record lands; Tansu holds the fetch for part of this wait even then, so the client's
    # default (500 ms) would put up to that much latency before every event a service handles.
    consumer_fetch_max_wait_ms: int = 50
    consumer_max_attempts: int = 3
    # How long a dead-letter topic keeps what it holds: time to look, then room is made.
    dead_letter_retention_ms: int = 14 * 86_400_000
    consumer_retry_backoff_s: float = 0.2
    # How long a consumer remembers an applied event id (inbox.purge_expired): at least as
    # long as the topic keeps events, so no redelivery can apply one twice.
    inbox_retention_s: float = 7 * 86_400.0
    # The compacted topic of the per-customer data keys (rapport_events.shredding).
    keys_topic: str = KEYS_TOPIC
    # Key-encryption keys, `<id>:<random secret of 32+ characters>`, oldest first: the last
    # wraps new data keys, every one unwraps. Rotate by appending a new one. The default is
    # the published development KEK, which each service refuses outside development.
    key_encryption_keys: list[str] = Field(default_factory=lambda: [DEVELOPMENT_KEK])
    # Off only to measure what sealing costs (`make bench`): personal fields then go in clear.
    seal_personal_fields: bool = True
    relay_batch_size: int = 500
    relay_poll_interval_s: float = 0.05
    relay_max_backoff_s: float = 5.0
    # 0: the relay deletes a row once the broker has it, so the outbox holds only what waits
    # (no dead row versions piling up on PostgreSQL). More keeps sent rows, marked, that long.
    outbox_retention_s: float = Field(default=0.0, ge=0.0)
    # On PostgreSQL one relay per database publishes (an advisory lock); the others stand by
    # and try the lock this often, and the active one checks its lock connection as often.
    relay_lock_check_s: float = Field(default=1.0, gt=0.0)
    # The lock's session ends when it stays idle this long (idle_session_timeout), so the
    # lock of a frozen relay process goes to a standby.
    relay_lock_idle_timeout_s: float = Field(default=10.0, gt=0.0)
    # The largest event `outbox.add` accepts, as the record batch of one message it makes
    # (what the broker compares with `message.max.bytes`, 1048588 by default on Kafka).
    # Below that, so the trace headers the relay adds still fit; raising it needs the
    # broker's (or the topic's `max.message.bytes`) raised too.
    max_message_bytes: int = Field(default=1_000_000, ge=1024)
    # Supervision: a relay or consumer with work that completes no round for this long,
    # or that restarts more than `max_restarts` times in `restart_window_s`, makes /readyz 503.
    stall_after_s: float = 60.0
    max_restarts: int = 3
    restart_window_s: float = 60.0
    restart_max_backoff_s: float = 30.0
    # A consumer whose fetches fail this long leaves and rejoins as a fresh member.
    consumer_rejoin_after_s: float = 15.0
    # A partition whose position stays behind the log this long makes the member rejoin.
    consumer_stuck_after_s: float = 15.0

    @field_validator("key_encryption_keys")
    @classmethod
    def _well_formed_keks(cls, value: list[str]) -> list[str]:
        parse_keks(value)
        return value

    def secrets(self) -> dict[str, str]:
        """The secrets of these settings, by the variable that sets them, for
        `environment.enforce_secrets` (each service checks them with its own)."""
        return {
            f"KAFKA_KEY_ENCRYPTION_KEYS[{kek_id}]": secret
            for kek_id, secret in parse_keks(self.key_encryption_keys).items()
        }

    def restart_policy(self) -> RestartPolicy:
        """How the relay, the consumer and the workers are restarted when they fail."""
        return RestartPolicy(
            max_backoff_s=self.restart_max_backoff_s,
            max_restarts=self.max_restarts,
            window_s=self.restart_window_s,
        )

    def dead_letter_topic(self, service: str) -> str:
        """Name of the dead-letter topic of one service's consumer group."""
        return f"{self.topic}.dlq.{service}"
