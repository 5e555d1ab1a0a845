"""Operator accounts: argon2 password hashes, the directory of configured accounts, the
login limit."""

import functools
import time
from collections import deque

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from rapport_console.operators.models import Operator
from rapport_console.roles import Role
from rapport_console.settings import DEVELOPMENT_PASSWORD, OperatorAccount, Settings
from rapport_events.environment import is_development

_hasher = PasswordHasher()
# Verified when the user name is unknown, so a wrong name costs as long as a wrong password.
_DUMMY_HASH = _hasher.hash("no such operator")
MIN_PASSWORD_LENGTH = 12


@functools.cache
def _development_hash() -> str:
    # argon2 is slow by design: hash the published password once per process.
    return hash_password(DEVELOPMENT_PASSWORD)


def hash_password(password: str) -> str:
    """The argon2id hash stored for a password."""
    return _hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    """Whether the password matches the hash (with no hash, a dummy costs the same time)."""
    try:
        return _hasher.verify(password_hash or _DUMMY_HASH, password) and password_hash is not None
    except (VerificationError, InvalidHashError):
        return False


class Directory:
    """The operator accounts the console accepts."""

    def __init__(self, accounts: list[OperatorAccount]) -> None:
        self._accounts = {account.username: account for account in accounts}

    @classmethod
    def from_settings(cls, settings: Settings) -> "Directory":
        """The configured accounts; in development without any, one per role."""
        accounts = list(settings.operators)
        if not accounts and is_development(settings.environment):
            shared = _development_hash()
            accounts = [
                OperatorAccount(username=role.value, role=role, password_hash=shared)
                for role in Role
            ]
        return cls(accounts)

    def usernames(self) -> list[str]:
        return sorted(self._accounts)

    def get(self, username: str) -> Operator | None:
        """The operator still configured under `username` (a removed one is logged out)."""
        account = self._accounts.get(username)
        return Operator(account.username, account.role) if account else None

    def authenticate(self, username: str, password: str) -> Operator | None:
        """The operator when the password matches, else None."""
        account = self._accounts.get(username)
        if not verify_password(account.password_hash if account else None, password):
            return None
        return Operator(account.username, account.role) if account else None


class LoginLimiter:
    """At most `attempts` failed logins per user name and per client in `window_s`."""

    def __init__(self, attempts: int, window_s: float) -> None:
        self.attempts = attempts
        self.window_s = window_s
        self._failures: dict[str, deque[float]] = {}

    def _recent(self, key: str, now: float) -> deque[float]:
        failures = self._failures.setdefault(key, deque())
        while failures and failures[0] <= now - self.window_s:
            failures.popleft()
        if not failures:
            del self._failures[key]  # keeps the map bounded by recent failures
            return deque()
        return failures

    def blocked(self, *keys: str) -> bool:
        """Whether any key has used up its failures."""
        now = time.monotonic()
        return any(len(self._recent(key, now)) >= self.attempts for key in keys)

    def failed(self, *keys: str) -> None:
        """Count one failed login against each key."""
        now = time.monotonic()
        for key in keys:
            self._failures.setdefault(key, deque()).append(now)

    def succeeded(self, *keys: str) -> None:
        for key in keys:
            self._failures.pop(key, None)
