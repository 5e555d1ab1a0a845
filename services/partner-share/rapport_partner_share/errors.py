"""Partner-share's refusals. The lookups are turned into a 404 by the route that made them
(`missing`); `InvalidRequest` is answered with its 400 by `install_error_handlers`."""

from fastapi import HTTPException, status

from rapport_events import errors

NOT_FOUND = status.HTTP_404_NOT_FOUND


class CustomerNotFound(LookupError):
    """Partner-share has not heard of a customer with that id."""


class PartnerNotFound(LookupError):
    """No partner (or no active partner) has that id."""


class ApiKeyNotFound(LookupError):
    """The partner has no key with that id."""


class UnknownRef(LookupError):
    """No consenting customer has this ref for this partner (or no customer at all)."""


class NotificationNotFound(LookupError):
    """The partner has no notification with that id."""


class InvalidRequest(errors.InvalidRequest):
    """A request that parses but cannot be honoured (bad cursor, purpose, time)."""

    status_code = 400


def missing(what: str, error: LookupError) -> HTTPException:
    """The 404 of a lookup that found nothing."""
    return HTTPException(NOT_FOUND, f"no {what} {error}")
