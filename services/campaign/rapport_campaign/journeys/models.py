"""Journeys: the timer of one customer in one journey, and the request schemas."""

from datetime import datetime
from typing import Any, Self

from pydantic import ConfigDict, model_validator
from pydantic import Field as PydanticField
from sqlalchemy import JSON, Column, Index
from sqlmodel import Field, SQLModel

from rapport_campaign.campaigns.models import MessageContent, Trigger
from rapport_campaign.shared import TZ
from rapport_events.base import utcnow
from rapport_events.limits import Checked


class JourneyState(SQLModel, table=True):
    """Where one customer is in one journey: the timer survives restarts."""

    __tablename__ = "campaign_journey_states"
    __table_args__ = (Index("ix_campaign_journey_states_due", "due_at"),)

    journey_id: str = Field(primary_key=True, max_length=64)
    customer_id: str = Field(primary_key=True, max_length=64)
    cycle: int = 1
    fired_cycle: int = 0
    due_at: datetime | None = Field(default=None, sa_type=TZ)  # type: ignore[call-overload]
    context: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON))
    updated_at: datetime = Field(default_factory=utcnow, sa_type=TZ)


class JourneyCreate(MessageContent):
    """A triggered journey: welcome, abandoned cart or re-engagement."""

    trigger: Trigger
    delay_minutes: float = PydanticField(
        default=0,
        ge=0,
        le=60 * 24 * 365,
        description="welcome: after registration; abandoned_cart: cart left without an order",
    )
    inactivity_days: float | None = PydanticField(
        default=None, gt=0, le=3650, description="re_engagement: days without any activity"
    )
    active: bool = True

    @model_validator(mode="after")
    def _trigger_settings(self) -> Self:
        if self.trigger == "re_engagement" and self.inactivity_days is None:
            raise ValueError("a re_engagement journey needs inactivity_days")
        if self.trigger != "re_engagement" and self.inactivity_days is not None:
            raise ValueError("inactivity_days is for re_engagement journeys only")
        if self.trigger == "abandoned_cart" and self.delay_minutes <= 0:
            raise ValueError("an abandoned_cart journey needs delay_minutes > 0")
        return self


class JourneyUpdate(Checked):
    """Pause or resume a journey."""

    model_config = ConfigDict(extra="forbid")

    active: bool
