"""Support's refusals, on the shared base classes: `install_error_handlers` answers each
with its 4xx as JSON."""

from typing import Any

from rapport_events import errors


class NotFound(errors.NotFound):
    """No such customer, ticket or mention."""


class CustomerNotFound(NotFound):
    """Support has not heard of a customer with that id."""

    def message(self) -> str:
        return f"no customer {self}"


class Conflict(errors.Conflict):
    """The request contradicts the stored state (a closed ticket, an erased customer...)."""


class InvalidRequest(errors.InvalidRequest):
    """The request is well-formed but asks for something that cannot be done."""


NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"description": "no such resource"}}
