"""The journey timers of a run's customers, changed in memory and written once."""

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from sqlmodel.ext.asyncio.session import AsyncSession

from rapport_campaign import shared
from rapport_campaign.audience import store as audience_store
from rapport_campaign.campaigns.models import Campaign
from rapport_campaign.journeys import store
from rapport_campaign.shared import utc
from rapport_events.base import utcnow
from rapport_events.types import CartUpdated


class Timers:
    """The journey timers of a run's customers, changed in memory and written once.

    The rules are `journeys.service`'s (`on_registered`, `on_activity`, `on_cart`, `on_order`),
    applied to rows read with one query; a run with no journey defined reads nothing more.
    """

    def __init__(
        self,
        journeys: list[Campaign],
        states: dict[tuple[str, str], dict[str, Any]],
        consents: dict[tuple[str, str], dict[str, Any]],
    ) -> None:
        self.journeys = journeys
        self.states = states
        self.consents = consents
        self.changed: dict[tuple[str, str], dict[str, Any]] = {}

    @classmethod
    async def load(
        cls,
        session: AsyncSession,
        customer_ids: Iterable[str],
        consents: dict[tuple[str, str], dict[str, Any]] | None = None,
    ) -> "Timers":
        journeys = await store.SqlJourneyStore(session).journeys()
        if not journeys:
            return cls([], {}, {})
        ids = set(customer_ids)
        states = await store.journey_states(session, [j.id for j in journeys], ids)
        if consents is None:
            consents = await audience_store.consents(session, ids)
        return cls(journeys, states, consents)

    def _active(self, trigger: str) -> list[Campaign]:
        return [j for j in self.journeys if j.active and j.trigger == trigger]

    def _withdrawn(self, customer_id: str, channel: str) -> bool:
        consent = self.consents.get((customer_id, channel))
        return consent is not None and not (consent["granted"] and consent["suppressed_at"] is None)

    def _state(self, journey_id: str, customer_id: str) -> dict[str, Any]:
        state = self.states.get((journey_id, customer_id))
        if state is None:
            state = {
                "journey_id": journey_id,
                "customer_id": customer_id,
                "cycle": 1,
                "fired_cycle": 0,
                "due_at": None,
                "context": {},
                "updated_at": utcnow(),
            }
        return state

    def _keep(self, state: dict[str, Any]) -> None:
        state["updated_at"] = utcnow()
        key = (state["journey_id"], state["customer_id"])
        self.states[key] = self.changed[key] = state

    @staticmethod
    def _new_cycle(state: dict[str, Any]) -> None:
        if state["fired_cycle"] >= state["cycle"]:
            state["cycle"] += 1

    def registered(self, customer_id: str, at: datetime) -> None:
        for journey in self._active("welcome"):
            if at < utc(journey.created_at) or (journey.id, customer_id) in self.states:
                continue
            if self._withdrawn(customer_id, journey.channel):
                continue
            delay = timedelta(minutes=float(journey.trigger_config.get("delay_minutes", 0)))
            state = self._state(journey.id, customer_id)
            state["due_at"] = at + delay
            self._keep(state)
        self.activity(customer_id, at)

    def activity(self, customer_id: str, at: datetime) -> None:
        for journey in self._active("re_engagement"):
            if self._withdrawn(customer_id, journey.channel):
                continue
            state = self._state(journey.id, customer_id)
            self._new_cycle(state)
            days = float(journey.trigger_config["inactivity_days"])
            due = max(at, utc(journey.created_at)) + timedelta(days=days)
            if state["due_at"] is None or utc(state["due_at"]) < due:
                state["due_at"] = due
            self._keep(state)

    def cart(self, customer_id: str, event: CartUpdated, at: datetime) -> None:
        empty = not event.items and event.value == 0
        for journey in self._active("abandoned_cart"):
            if at < utc(journey.created_at) or self._withdrawn(customer_id, journey.channel):
                continue
            state = self._state(journey.id, customer_id)
            if state["fired_cycle"] >= state["cycle"]:
                continue
            if empty:
                state["due_at"] = None
            else:
                delay = timedelta(minutes=float(journey.trigger_config["delay_minutes"]))
                state["due_at"] = at + delay
                state["context"] = {
                    "cart": {
                        "cart_id": event.cart_id,
                        "value": str(event.value),
                        "currency": event.currency,
                        "items": [item.model_dump(mode="json") for item in event.items],
                    }
                }
            self._keep(state)

    def order(self, customer_id: str, at: datetime) -> None:
        for journey in self.journeys:
            if journey.trigger not in ("welcome", "abandoned_cart"):
                continue
            state = self.states.get((journey.id, customer_id))
            if state is None:
                continue
            state["due_at"] = None
            if journey.trigger == "abandoned_cart":
                self._new_cycle(state)
            else:
                state["fired_cycle"] = state["cycle"]
            state["context"] = {}
            self._keep(state)
        self.activity(customer_id, at)

    async def write(self, session: AsyncSession) -> None:
        await shared.upsert(
            session,
            store.JOURNEY_STATES,
            list(self.changed.values()),
            ["journey_id", "customer_id"],
        )
