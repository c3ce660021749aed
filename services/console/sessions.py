"""Sessions in one encrypted cookie (AES-256-GCM), and the CSRF token each session carries.

A session holds the CSRF token and its expiry; once someone has signed in, who they are (their
subject, name and the parties they act for); with OpenID Connect, also their access and refresh
tokens; and while a sign-in at the identity provider is under way, its state, nonce and PKCE
verifier. The tokens are the person's credentials, so the cookie is encrypted, not only signed:
nobody who sees the cookie (a proxy's log, the browser's storage) can read them, and nobody
without the secret can make or change one (GCM authenticates what it encrypts).

The cookie is `base64url(nonce || ciphertext || tag)` of the session's JSON. The key is derived
from CONSOLE_SESSION_SECRET with HKDF-SHA256, so any console instance with the same secret reads
it and a restart loses nothing; a new secret signs everyone out.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import os
import secrets
import time
from functools import lru_cache

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from pydantic import BaseModel, ConfigDict, ValidationError

COOKIE = "coordreg_console"
# Browsers keep a cookie of at most 4096 bytes, name and attributes included (RFC 6265 §6.1
# asks for at least that much): a larger one is dropped without a word, and the person would
# find themselves signed out. The console refuses to set one above this instead.
MAX_COOKIE_CHARS = 3900
NONCE_BYTES = 12  # GCM's standard nonce; random per cookie (far fewer than 2**32 per key and secret)
# Binds the ciphertext to its purpose: a blob encrypted for anything else does not decrypt here.
KEY_INFO = b"coordreg-console session cookie v1"


class Person(BaseModel):
    """Who is signed in: the subject the registry records as the actor of what they do."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    subject: str
    name: str
    party_ids: tuple[str, ...]


class Tokens(BaseModel):
    """The person's own tokens from the identity provider (OpenID Connect only)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    access_token: str
    refresh_token: str | None = None
    expires_at: int  # seconds since 1970, from the token response's expires_in


class SignInFlow(BaseModel):
    """A sign-in sent to the identity provider, checked when the browser comes back with a code."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    state: str
    nonce: str
    code_verifier: str


class Session(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    csrf: str
    expires: int
    person: Person | None = None
    tokens: Tokens | None = None
    flow: SignInFlow | None = None

    def signed_in_as(self, person: Person, max_age: int, tokens: Tokens | None = None) -> Session:
        """A new session for the person: a new CSRF token too (no fixation of the old one), and
        the sign-in's flow is spent."""
        return Session(
            csrf=secrets.token_urlsafe(32), expires=int(time.time()) + max_age, person=person, tokens=tokens
        )

    def signing_in(self, flow: SignInFlow) -> Session:
        return self.model_copy(update={"flow": flow})

    def with_tokens(self, tokens: Tokens, person: Person | None = None) -> Session:
        return self.model_copy(update={"tokens": tokens, "person": person or self.person})


def new_session(max_age: int) -> Session:
    return Session(csrf=secrets.token_urlsafe(32), expires=int(time.time()) + max_age)


@lru_cache(maxsize=4)
def _cipher(secret: str) -> AESGCM:
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=KEY_INFO).derive(secret.encode())
    return AESGCM(key)


def encode(session: Session, secret: str) -> str:
    nonce = os.urandom(NONCE_BYTES)
    plain = session.model_dump_json(exclude_none=True).encode()
    sealed = nonce + _cipher(secret).encrypt(nonce, plain, COOKIE.encode())
    return base64.urlsafe_b64encode(sealed).decode("ascii").rstrip("=")


def decode(cookie: str | None, secret: str, now: float | None = None) -> Session | None:
    """The session the cookie holds, or None when it is missing, forged, malformed or expired."""
    if not cookie or len(cookie) > 4096:
        return None
    try:
        sealed = base64.urlsafe_b64decode(cookie + "=" * (-len(cookie) % 4))
        plain = _cipher(secret).decrypt(sealed[:NONCE_BYTES], sealed[NONCE_BYTES:], COOKIE.encode())
        session = Session.model_validate_json(plain)
    except (ValueError, binascii.Error, InvalidTag, ValidationError):
        return None
    return session if session.expires > (time.time() if now is None else now) else None


def csrf_matches(session: Session | None, submitted: str | None) -> bool:
    # As bytes: compare_digest refuses str with non-ASCII characters (a TypeError, a 500).
    return (
        session is not None
        and bool(submitted)
        and hmac.compare_digest(session.csrf.encode(), (submitted or "").encode())
    )
