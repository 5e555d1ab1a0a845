"""Sales' refusals, on the shared base classes: `install_error_handlers` answers each
with its 4xx as JSON `{error, message, detail}`."""

from typing import Any

from rapport_events import errors
from rapport_events.pagination import BadCursor

__all__ = ["BadCursor", "Conflict", "InvalidRequest", "NotFound"]

# What a route declares in its OpenAPI `responses` beyond what every route gets (a 404 on
# a path id, 400/413 on a body, 401): ids named in a body or query, a closed deal, raw bodies.
REFERENCE_NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"description": "an id named in the body or query is not known"}
}
CONFLICT: dict[int | str, dict[str, Any]] = {409: {"description": "not in a state that allows it"}}
UNSUPPORTED_TYPE: dict[int | str, dict[str, Any]] = {
    415: {"description": "the body's Content-Type is not one this route takes"}
}


class NotFound(errors.NotFound):
    """Nothing stored under that id."""


class Conflict(errors.Conflict):
    """The request contradicts what is stored (a closed opportunity, a duplicate name)."""


class InvalidRequest(errors.InvalidRequest):
    """Well-formed input that the domain refuses (unknown stage, close date in the past)."""
