"""The SLA monitor: records and publishes missed targets, run in the lifespan."""

from rapport_events.db import SessionFactory, transaction
from rapport_events.supervisor import Periodic
from rapport_events.tracing import untraced
from rapport_support.settings import Settings
from rapport_support.tickets import sla
from rapport_support.unit_of_work import SqlSupportUnitOfWork


class SlaMonitor(Periodic):
    """Records and publishes the SLA targets missed since its last pass."""

    def __init__(self, sessions: SessionFactory, settings: Settings) -> None:
        super().__init__(
            "support-sla-monitor",
            self.check,
            settings.sla_check_interval_s,
            policy=settings.kafka.restart_policy(),
            repeat_while_busy=False,
        )
        self._sessions = sessions
        self._settings = settings

    async def check(self) -> int:
        # Looking for breaches and recording them is one transaction, and a pass nearly
        # always finds none: not a trace each time.
        with untraced():
            async with transaction(self._sessions) as session:
                uow = SqlSupportUnitOfWork(session, self._settings)
                return len(await sla.record_due_breaches(uow))
