from sqlmodel import SQLModel

import rapport_campaign.tables  # noqa: F401  (tables on the metadata)
import rapport_events.inbox  # noqa: F401
import rapport_events.outbox  # noqa: F401
from rapport_events.migrations import run_env

run_env(SQLModel.metadata)
