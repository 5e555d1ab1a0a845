"""Profile's refusals, on the shared base classes: `install_error_handlers` answers each
with its 4xx as JSON."""

from typing import Any

from rapport_events import errors


class CustomerNotFound(errors.NotFound):
    """No customer has that id."""

    def message(self) -> str:
        return f"no customer {self}"


class DuplicateEmail(errors.Conflict):
    """Another customer already has that e-mail address."""

    def __init__(self, existing_id: str) -> None:
        super().__init__(f"a customer with this email already exists: {existing_id}")
        self.existing_id = existing_id

    def details(self) -> dict[str, Any]:
        return {"existing_id": self.existing_id}


class DuplicateExternalId(DuplicateEmail):
    """Another customer already has one of these external ids."""

    def __init__(self, existing_id: str) -> None:
        ValueError.__init__(self, f"a customer with this external id already exists: {existing_id}")
        self.existing_id = existing_id


class Conflict(errors.Conflict):
    """The request contradicts the state of the data (409)."""


class InvalidRequest(errors.InvalidRequest):
    """The request is well-formed but cannot be carried out (422)."""


class IdempotencyMismatch(errors.InvalidRequest):
    """An Idempotency-Key was reused for a different request."""

    code = "idempotency_key_reused"


NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"description": "no such customer"}}


CONFLICT: dict[int | str, dict[str, Any]] = {
    409: {"description": "the customer was merged away, or the data conflicts"}
}
