from sqlmodel import SQLModel

import rapport_events.inbox  # noqa: F401
import rapport_events.outbox  # noqa: F401
import rapport_sales.tables  # noqa: F401  (every domain's tables on the metadata)
from rapport_events.migrations import run_env

run_env(SQLModel.metadata)
