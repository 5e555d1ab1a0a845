"""Base class of every event on the customer log."""

from datetime import UTC, datetime
from typing import ClassVar

from pydantic import BaseModel, ConfigDict, Field


def utcnow() -> datetime:
    """Timezone-aware now, the only clock events use."""
    return datetime.now(UTC)


class Event(BaseModel):
    """A fact about one customer; `TYPE` is its CloudEvents type, versioned."""

    # Unknown fields are ignored so an older consumer can read a newer producer's additive change.
    model_config = ConfigDict(frozen=True, extra="ignore")

    TYPE: ClassVar[str]
    # The fields that may hold personal data: sealed on the log under the customer's data
    # key (rapport_events.shredding), and None once the customer's key is shredded.
    PERSONAL: ClassVar[frozenset[str]] = frozenset()
    customer_id: str = Field(min_length=1, max_length=64)
    occurred_at: datetime = Field(default_factory=utcnow)

    @property
    def partition_key(self) -> str:
        """The Kafka key and `ce_subject`: keeps one customer's events in order."""
        return self.customer_id
