"""Sales' refusals, on the shared base classes: `install_error_handlers` answers each
with its 4xx as JSON `{error, message, detail}`."""

from rapport_events import errors
from rapport_events.pagination import BadCursor

__all__ = ["BadCursor", "Conflict", "InvalidRequest", "NotFound"]


class NotFound(errors.NotFound):
    """Nothing stored under that id."""


class Conflict(errors.Conflict):
    """The request contradicts what is stored (a closed opportunity, a duplicate name)."""


class InvalidRequest(errors.InvalidRequest):
    """Well-formed input that the domain refuses (unknown stage, close date in the past)."""
