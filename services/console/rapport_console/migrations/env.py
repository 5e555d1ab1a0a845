from sqlmodel import SQLModel

import rapport_console.access_log  # noqa: F401  (the tables on the metadata)
import rapport_console.accounts  # noqa: F401
from rapport_events.migrations import run_env

run_env(SQLModel.metadata)
