from sqlmodel import SQLModel

import rapport_console.tables  # noqa: F401  (every domain's tables on the metadata)
from rapport_events.migrations import run_env

run_env(SQLModel.metadata)
