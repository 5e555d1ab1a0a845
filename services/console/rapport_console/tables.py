"""Every table of the console in one place: importing this module puts each domain's tables
on `SQLModel.metadata` (Alembic's env and the migration tests read it from there)."""

from rapport_console.audit import models as audit
from rapport_console.operators import models as operators

DOMAINS = (audit, operators)
