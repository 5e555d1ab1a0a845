"""The settings every service reads the same way, under its own prefix.

A service's `Settings` derives from `ServiceSettings` (or, without the event log, from
`BaseServiceSettings`), names its prefix in `model_config` and its name in
`service_name`, and declares only what is its own. The shared settings take each
service's prefix and a fleet-wide fallback: `<PREFIX>DATABASE_URL` or `DATABASE_URL`,
`<PREFIX>API_TOKEN` or `RAPPORT_API_TOKEN`, `<PREFIX>ENVIRONMENT` or `RAPPORT_ENV`,
`<PREFIX>MAX_BODY_BYTES` or `RAPPORT_MAX_BODY_BYTES`. Outside development every secret
must be strong: the service's own (`own_secrets`) and the shared ones, checked together.
"""

from typing import Any, Self

from pydantic import AliasChoices, Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from rapport_events.environment import DEVELOPMENT_TOKEN, PRODUCTION, enforce_secrets
from rapport_events.limits import DEFAULT_MAX_BODY_BYTES
from rapport_events.settings import KafkaSettings

# The shared settings a prefix applies to, and the fleet-wide variable each falls back to.
FALLBACKS = {
    "environment": "RAPPORT_ENV",
    "database_url": "DATABASE_URL",
    "api_token": "RAPPORT_API_TOKEN",
    "max_body_bytes": "RAPPORT_MAX_BODY_BYTES",
}


def service_config(prefix: str) -> SettingsConfigDict:
    """A service's settings config: its environment prefix, unknown variables ignored."""
    # validate_by_name: Settings(api_token=...) must not be dropped as an unknown extra.
    return SettingsConfigDict(env_prefix=prefix, extra="ignore", validate_by_name=True)


class BaseServiceSettings(BaseSettings):
    """Name, environment, database and bearer token: what every service reads."""

    model_config = service_config("RAPPORT_")

    service_name: str = "rapport"
    environment: str = Field(
        default=PRODUCTION,
        description="development allows weak secrets (with a warning); anything else refuses them",
    )
    # Its default is a SQLite file named after the service, under var/.
    database_url: str = ""
    api_token: str = DEVELOPMENT_TOKEN

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        """Give the shared settings this service's variables and database file."""
        super().__pydantic_init_subclass__(**kwargs)
        prefix = cls.model_config.get("env_prefix", "")
        for name, fallback in FALLBACKS.items():
            if name in cls.model_fields:
                variable = f"{prefix}{name.upper()}"
                cls.model_fields[name].validation_alias = AliasChoices(variable, fallback)
        service = cls.model_fields["service_name"].default
        cls.model_fields["database_url"].default = f"sqlite:///var/{service}.db"
        cls.model_rebuild(force=True)

    def own_secrets(self) -> dict[str, str | None]:
        """This service's secrets beyond the shared ones, by the variable that sets them."""
        return {}

    def shared_secrets(self) -> dict[str, str | None]:
        """The bearer token (and, with the log, the key-encryption keys) by variable."""
        prefix = self.model_config.get("env_prefix", "")
        return {f"{prefix}API_TOKEN (or RAPPORT_API_TOKEN)": self.api_token}

    @model_validator(mode="after")
    def _strong_secrets_outside_development(self) -> Self:
        enforce_secrets(self.environment, {**self.shared_secrets(), **self.own_secrets()})
        return self


class ServiceSettings(BaseServiceSettings):
    """A service on the event log: the shared settings, the broker's, a body size limit."""

    max_body_bytes: int = Field(
        default=DEFAULT_MAX_BODY_BYTES,
        ge=1024,
        description="Largest request body accepted; a larger one gets 413",
    )
    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    # False makes an API-only replica: it publishes (outbox) but does not join the
    # consumer group. At least one replica must consume, or the projections stand still.
    consume_events: bool = True

    def shared_secrets(self) -> dict[str, str | None]:
        return {**super().shared_secrets(), **self.kafka.secrets()}
