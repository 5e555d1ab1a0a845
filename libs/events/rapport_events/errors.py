"""The refusals a service's use cases raise, each carrying the 4xx it is answered with.

A service subclasses these (its own `NotFound`, `Conflict`, `InvalidRequest`, with a
narrower meaning or another `code` where its API has always used one), and
`rapport_events.http.install_error_handlers` answers every one of them as JSON
`{error, message, detail, ...}`, so no service writes its own exception handlers.
"""

from typing import Any, ClassVar


class Refusal(Exception):
    """A request the service will not carry out, and the reply that says why."""

    status_code: ClassVar[int] = 422
    code: ClassVar[str] = "invalid_request"

    def message(self) -> str:
        """What the reply says; the exception's text unless a subclass words it."""
        return str(self)

    def details(self) -> dict[str, Any]:
        """Fields the reply carries besides `error`, `message` and `detail`."""
        return {}


class NotFound(Refusal, LookupError):
    """No such resource (404)."""

    status_code = 404
    code = "not_found"


class Conflict(Refusal, ValueError):
    """The request contradicts the stored state (409)."""

    status_code = 409
    code = "conflict"


class InvalidRequest(Refusal, ValueError):
    """Well-formed input that cannot be carried out (422)."""

    status_code = 422
    code = "invalid_request"
