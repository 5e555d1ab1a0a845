"""Operator sessions in a signed cookie, and the CSRF token every form carries.

The cookie holds the user name and the session's CSRF token, signed (itsdangerous) and
dated, so it cannot be forged or kept beyond its age; the role is looked up again on
every request, so a changed or removed account takes effect at once. Forms post the
token back in a hidden field (htmx sends it as the X-CSRF-Token header); a request
whose token differs from its session's is refused, which a cross-site form cannot avoid.
"""

import secrets
from dataclasses import dataclass

from itsdangerous import BadSignature, URLSafeTimedSerializer
from starlette.responses import Response

SESSION_COOKIE = "rapport_console_session"
# Before login there is no session: the login form's token lives in a cookie of its own.
LOGIN_COOKIE = "rapport_console_login"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"
LOGIN_FORM_MAX_AGE_S = 3600


@dataclass(frozen=True)
class Session:
    username: str
    csrf_token: str


class SessionCodec:
    """Signs and reads the console's cookies."""

    def __init__(self, secret: str, max_age_s: int, secure: bool) -> None:
        self._sessions = URLSafeTimedSerializer(secret, salt="rapport-console-session")
        self._logins = URLSafeTimedSerializer(secret, salt="rapport-console-login")
        self.max_age_s = max_age_s
        self.secure = secure

    def read(self, cookie: str | None) -> Session | None:
        """The session of a cookie, or None when absent, forged or too old."""
        if not cookie:
            return None
        try:
            data = self._sessions.loads(cookie, max_age=self.max_age_s)
        except BadSignature:
            return None
        if not isinstance(data, dict) or not {"u", "c"} <= data.keys():
            return None
        return Session(username=str(data["u"]), csrf_token=str(data["c"]))

    def start(self, response: Response, username: str) -> None:
        """Log `username` in: a fresh session (and CSRF token) in the cookie."""
        value = self._sessions.dumps({"u": username, "c": secrets.token_urlsafe(32)})
        self._set(response, SESSION_COOKIE, value, self.max_age_s)
        response.delete_cookie(LOGIN_COOKIE, path="/")

    def end(self, response: Response) -> None:
        response.delete_cookie(SESSION_COOKIE, path="/")

    def login_token(self, cookie: str | None) -> str | None:
        """The login form's CSRF token from its cookie, or None."""
        if not cookie:
            return None
        try:
            return str(self._logins.loads(cookie, max_age=LOGIN_FORM_MAX_AGE_S))
        except BadSignature:
            return None

    def keep_login_token(self, response: Response, token: str) -> None:
        """Keep the login form's CSRF token in its cookie."""
        self._set(response, LOGIN_COOKIE, self._logins.dumps(token), LOGIN_FORM_MAX_AGE_S)

    def _set(self, response: Response, name: str, value: str, max_age: int) -> None:
        response.set_cookie(
            name,
            value,
            max_age=max_age,
            path="/",
            httponly=True,
            samesite="lax",
            secure=self.secure,
        )


def same_token(expected: str, given: str | None) -> bool:
    """Constant-time comparison of a CSRF token."""
    return bool(given) and secrets.compare_digest(expected.encode(), str(given).encode())
