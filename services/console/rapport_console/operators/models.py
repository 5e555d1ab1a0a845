"""Operators: the logged-in operator, and the accounts an admin creates in the console (the
table; the configured ones live in CONSOLE_OPERATORS)."""

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import DateTime
from sqlmodel import Field, SQLModel

from rapport_console.roles import Role
from rapport_events.base import utcnow

TZ = DateTime(timezone=True)


@dataclass(frozen=True)
class Operator:
    """A logged-in operator."""

    username: str
    role: Role


class OperatorRecord(SQLModel, table=True):
    """An operator created in the console: the role and the argon2id hash of the password."""

    __tablename__ = "console_operators"

    username: str = Field(primary_key=True, max_length=64)
    role: str = Field(max_length=32)
    password_hash: str = Field(max_length=500)
    created_by: str = Field(max_length=64)
    created_at: datetime = Field(default_factory=utcnow, sa_type=TZ)
    disabled_at: datetime | None = Field(default=None, sa_type=TZ)
    disabled_by: str | None = Field(default=None, max_length=64)

    def operator(self) -> Operator | None:
        """The operator this account logs in as, None once disabled."""
        return None if self.disabled_at else Operator(self.username, Role(self.role))
