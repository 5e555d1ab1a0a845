from sqlmodel import SQLModel

import rapport_events.inbox  # noqa: F401  (tables on the metadata)
import rapport_events.outbox  # noqa: F401
import rapport_profile.tables  # noqa: F401  (tables on the metadata)
from rapport_events.migrations import run_env

run_env(SQLModel.metadata)
