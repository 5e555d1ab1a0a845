"""Console settings, from the environment (prefix CONSOLE_)."""

from pathlib import Path
from typing import Self

from pydantic import BaseModel, Field, model_validator

from rapport_console.roles import Role
from rapport_events.environment import (
    is_development,
)
from rapport_events.service_settings import BaseServiceSettings, service_config

__all__ = ["DEVELOPMENT_PASSWORD", "OperatorAccount", "Settings", "get_settings"]

DEVELOPMENT_SESSION_SECRET = "rapport-dev-console-session-secret"
# `make run` prints it: every development operator (one per role) logs in with it.
DEVELOPMENT_PASSWORD = "rapport-dev-password"
# Where `npm ci` puts the browser libraries (package.json next to the package).
DEFAULT_ASSETS = Path(__file__).resolve().parent.parent / "node_modules"


class OperatorAccount(BaseModel):
    """One operator: a user name, a role and an argon2 hash of the password."""

    username: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._@-]+$")
    role: Role
    password_hash: str = Field(min_length=20, max_length=500)


class Settings(BaseServiceSettings):
    """Everything the console reads from its environment.

    `database_url` is where the operators and the access log are kept; `api_token` is the
    one bearer token for the four services unless a service's own is set.
    """

    model_config = service_config("CONSOLE_")

    service_name: str = "console"
    profile_url: str = "http://127.0.0.1:8001"
    campaign_url: str = "http://127.0.0.1:8002"
    support_url: str = "http://127.0.0.1:8003"
    partner_share_url: str = "http://127.0.0.1:8004"
    profile_api_token: str | None = None
    campaign_api_token: str | None = None
    support_api_token: str | None = None
    partner_share_api_token: str | None = None
    # Each service call of a page gets this long; a slower service makes the page partial.
    service_timeout_s: float = Field(default=2.0, gt=0, le=30)
    # How long the 360 reuses campaign's list of segments for their names (0: never).
    segment_names_cache_s: float = Field(default=30.0, ge=0, le=3600)

    # Signs the session cookie; changing it logs every operator out.
    session_secret: str = DEVELOPMENT_SESSION_SECRET
    session_max_age_s: int = Field(default=8 * 3600, ge=60)
    # JSON list of {username, role, password_hash}; `python -m rapport_console.operators`
    # prints an entry. Empty in development means one operator per role, named after it.
    operators: list[OperatorAccount] = []
    login_attempts: int = Field(default=5, ge=1, description="failed logins allowed per window")
    login_window_s: float = Field(default=300.0, gt=0)
    assets_dir: Path = DEFAULT_ASSETS
    # How long the logs keep an entry; older ones are deleted (rapport_console.audit.retention).
    audit_retention_days: int = Field(default=365, ge=1, le=36500)
    access_log_retention_days: int = Field(default=365, ge=1, le=36500)

    def token_for(self, service: str) -> str:
        """The bearer token the console sends to `service`."""
        own: str | None = getattr(self, f"{service.replace('-', '_')}_api_token")
        return own or self.api_token

    def url_for(self, service: str) -> str:
        """Where `service` answers."""
        return str(getattr(self, f"{service.replace('-', '_')}_url")).rstrip("/")

    @model_validator(mode="after")
    def _published_session_secret_refused(self) -> Self:
        if (
            not is_development(self.environment)
            and self.session_secret == DEVELOPMENT_SESSION_SECRET
        ):
            raise ValueError(
                "refusing to start outside development with the published "
                "CONSOLE_SESSION_SECRET: set it to a random value of at least 32 characters"
            )
        return self

    def own_secrets(self) -> dict[str, str | None]:
        """The session secret and each service's own token, by the variable that sets them."""
        return {
            "CONSOLE_SESSION_SECRET": self.session_secret,
            **{
                f"CONSOLE_{name.upper()}_API_TOKEN": getattr(self, f"{name}_api_token")
                for name in ("profile", "campaign", "support", "partner_share")
            },
        }


def get_settings() -> Settings:
    """Settings read now from the environment."""
    return Settings()
