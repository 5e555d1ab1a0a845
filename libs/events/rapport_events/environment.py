"""The deployment environment, and the secrets it demands: one check for every service.

A service runs in production unless told it is development (`RAPPORT_ENV=development`,
which `make run` and the tests set). Outside development it refuses to start with a
token or signing secret that is empty, short, a published default or a template
placeholder: each is a value an attacker can guess, and an empty signing secret makes
every link token forgeable. In development the published values are the point, so
weak ones only earn a warning.
"""

import logging
import re
from collections.abc import Mapping
from typing import Any

from pydantic import AliasChoices, Field

DEVELOPMENT = "development"
PRODUCTION = "production"

# The values this repository publishes: `make run` prints the token, the rest are defaults.
DEVELOPMENT_TOKEN = "rapport-dev-token"
DEVELOPMENT_SIGNING_SECRET = "rapport-dev-signing-secret"
DEVELOPMENT_WRITE_KEY = "rapport-dev-write-key"
DEVELOPMENT_LEDGER_KEY = "rapport-dev-ledger-key"
DEVELOPMENT_KEK_SECRET = "rapport-dev-key-encryption-key"
PUBLISHED_VALUES = frozenset(
    {
        DEVELOPMENT_TOKEN,
        DEVELOPMENT_SIGNING_SECRET,
        DEVELOPMENT_WRITE_KEY,
        DEVELOPMENT_LEDGER_KEY,
        DEVELOPMENT_KEK_SECRET,
        # docker-compose.yml's defaults before it required real values
        "rapport-local-compose-token",
        "rapport-local-compose-write-key",
        "rapport-local-compose-signing-secret",
        "rapport-local-compose-webhook-secret",
        "secret",
        "password",
        "changeme",
        "token",
    }
)
# Words of a template left unfilled ("replace-with-a-long-random-token", "CHANGE_ME").
_PLACEHOLDER = re.compile(r"replace[-_ ]?(with|me)|change[-_ ]?me|placeholder|example", re.I)

# 32 characters of token_urlsafe or hex carry 128 to 192 random bits; fewer than 8
# distinct characters means a value typed by hand ("aaaa…", "abab…"), not generated.
MIN_SECRET_LENGTH = 32
MIN_DISTINCT_CHARACTERS = 8
HOW_TO_GENERATE = "python -c 'import secrets; print(secrets.token_urlsafe(32))'"

logger = logging.getLogger("rapport.environment")


def environment_field(prefix: str) -> Any:
    """The `environment` setting: `<PREFIX>ENVIRONMENT` or `RAPPORT_ENV`, production by default."""
    return Field(
        default=PRODUCTION,
        validation_alias=AliasChoices(f"{prefix}ENVIRONMENT", "RAPPORT_ENV"),
        description="development allows weak secrets (with a warning); anything else refuses them",
    )


def is_development(environment: str) -> bool:
    """Whether the environment is the one where published secrets are allowed."""
    return environment.strip().lower() == DEVELOPMENT


def weakness(value: str) -> str | None:
    """Why a secret cannot guard production, or None when it can."""
    if not value.strip():
        return "is empty"
    if value.strip().lower() in PUBLISHED_VALUES:
        return "is a published default"
    if _PLACEHOLDER.search(value):
        return "is a template placeholder"
    if len(value) < MIN_SECRET_LENGTH:
        return f"is shorter than {MIN_SECRET_LENGTH} characters"
    if len(set(value)) < MIN_DISTINCT_CHARACTERS:
        return f"has fewer than {MIN_DISTINCT_CHARACTERS} distinct characters"
    return None


def enforce_secrets(environment: str, secrets: Mapping[str, str | None]) -> None:
    """Raise ValueError naming every weak secret outside development; warn in development.

    `secrets` maps the variable an operator sets to its value; None is a secret not set
    that falls back to another one, which is checked under its own name.
    """
    problems = [
        f"{name} {why}"
        for name, value in secrets.items()
        if value is not None and (why := weakness(value)) is not None
    ]
    if not problems:
        return
    if is_development(environment):
        logger.warning("weak secrets, acceptable in development only: %s", "; ".join(problems))
        return
    raise ValueError(
        f"refusing to start in environment {environment!r}: {'; '.join(problems)}. "
        f"Set each to a random value of at least {MIN_SECRET_LENGTH} characters "
        f"(generate one with: {HOW_TO_GENERATE}), or set RAPPORT_ENV=development "
        "on a developer's machine."
    )
