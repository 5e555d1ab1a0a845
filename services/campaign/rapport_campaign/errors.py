"""Campaign's refusals, on the shared base classes, and the error replies routes document."""

from typing import Any

from rapport_events import errors


class NotFound(errors.NotFound):
    """No such segment, campaign or customer (404)."""


class InvalidRequest(errors.InvalidRequest):
    """Well-formed input that cannot be carried out (422)."""

    code = "validation_error"


class Conflict(errors.Conflict):
    """The request contradicts the state of the data (409)."""


NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"description": "no such resource"}}
INVALID: dict[int | str, dict[str, Any]] = {422: {"description": "the input cannot be used"}}
CONFLICT: dict[int | str, dict[str, Any]] = {409: {"description": "not in a state that allows it"}}
