from sqlmodel import SQLModel

import rapport_console.access_log  # noqa: F401  (the table on the metadata)
from rapport_events.migrations import run_env

run_env(SQLModel.metadata)
