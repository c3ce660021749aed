"""Sessions in one signed cookie (HMAC-SHA256 of its payload, standard library only), and the
CSRF token each session carries.

The cookie holds `{"o": official id or null, "c": CSRF token, "e": expiry}` as base64url JSON,
then `.`, then the hex HMAC of that text under the session secret. Nothing else is kept: any
console instance with the same secret reads it, and a restart loses nothing.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass

COOKIE = "coordreg_console"


@dataclass(frozen=True)
class Session:
    official: str | None
    csrf: str
    expires: int

    def signed_in_as(self, official: str, max_age: int) -> Session:
        """A new session for the person: a new CSRF token too (no fixation of the old one)."""
        return Session(official, secrets.token_urlsafe(32), int(time.time()) + max_age)


def new_session(max_age: int) -> Session:
    return Session(None, secrets.token_urlsafe(32), int(time.time()) + max_age)


def _mac(secret: str, text: str) -> str:
    return hmac.new(secret.encode(), text.encode("ascii"), hashlib.sha256).hexdigest()


def encode(session: Session, secret: str) -> str:
    payload = json.dumps(
        {"o": session.official, "c": session.csrf, "e": session.expires}, separators=(",", ":")
    )
    text = base64.urlsafe_b64encode(payload.encode()).decode("ascii").rstrip("=")
    return f"{text}.{_mac(secret, text)}"


def decode(cookie: str | None, secret: str, now: float | None = None) -> Session | None:
    """The session the cookie holds, or None when it is missing, forged, malformed or expired."""
    if not cookie or len(cookie) > 4096 or "." not in cookie:
        return None
    text, _, mac = cookie.rpartition(".")
    try:
        if not hmac.compare_digest(_mac(secret, text), mac):
            return None
        data = json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
    except (ValueError, UnicodeError, binascii.Error):
        return None
    if not isinstance(data, dict):
        return None
    official, csrf, expires = data.get("o"), data.get("c"), data.get("e")
    if not (official is None or isinstance(official, str)) or not isinstance(csrf, str):
        return None
    if not isinstance(expires, int) or expires <= (time.time() if now is None else now):
        return None
    return Session(official, csrf, expires)


def csrf_matches(session: Session | None, submitted: str | None) -> bool:
    return session is not None and bool(submitted) and hmac.compare_digest(session.csrf, submitted or "")
