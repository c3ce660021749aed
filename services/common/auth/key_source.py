"""Where the trusted keys come from: inline JSON, a file re-read when it changes, or the dev key.

With no JWKS configured, development mode trusts the development key (deploy/dev-keys/) and
production mode refuses to start; production mode also refuses the development key under
any kid (it is recognised by its thumbprint). A file that changes into something unusable
is reported and the keys that were good keep serving.
"""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path
from typing import Any

import structlog

from services.common.auth import DEV_JWK, AuthConfigError
from services.common.auth.jwks import TrustedKey, parse_jwks, thumbprint

log = structlog.get_logger(__name__)

DEV_THUMBPRINT = thumbprint(DEV_JWK)


class KeySource:
    """The trusted keys, from inline JSON or a file that is re-read when it changes."""

    def __init__(
        self,
        setting: str,
        *,
        algorithms: frozenset[str],
        production: bool,
        reload_seconds: float = 30.0,
    ) -> None:
        self.algorithms = algorithms
        self.production = production
        self.reload_seconds = reload_seconds
        self._lock = threading.Lock()
        self._checked = time.monotonic()
        text = setting.strip()
        self.path: Path | None = None
        if not text:
            if production:
                raise AuthConfigError(
                    "production mode needs the trusted public keys: set *_AUTH_JWKS to a JWKS "
                    "document or the path of one"
                )
            self._keys = self._checked_keys({"keys": [DEV_JWK]}, allow_dev=True)
            self._mtime: float | None = None
            return
        if text.startswith("{"):
            self._keys = self._checked_keys(self._json(text, "inline JWKS"))
            self._mtime = None
            return
        self.path = Path(text)
        self._mtime = self._stat()
        self._keys = self._checked_keys(self._read())

    @staticmethod
    def _json(text: str, where: str) -> Any:
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise AuthConfigError(f"{where} is not JSON: {exc}") from exc

    def _stat(self) -> float:
        assert self.path is not None
        try:
            return os.stat(self.path).st_mtime
        except OSError as exc:
            raise AuthConfigError(f"cannot read the JWKS file {self.path}: {exc}") from exc

    def _read(self) -> Any:
        assert self.path is not None
        try:
            text = self.path.read_text(encoding="utf-8")
        except OSError as exc:
            raise AuthConfigError(f"cannot read the JWKS file {self.path}: {exc}") from exc
        return self._json(text, f"JWKS file {self.path}")

    def _checked_keys(self, document: Any, *, allow_dev: bool = False) -> dict[str, TrustedKey]:
        keys = parse_jwks(document, self.algorithms)
        if not keys:
            raise AuthConfigError("the JWKS has no keys: no token could ever be accepted")
        if self.production and not allow_dev:
            dev = [k.kid for k in keys.values() if k.thumbprint == DEV_THUMBPRINT or k.kid == DEV_JWK["kid"]]
            if dev:
                raise AuthConfigError(
                    f"production mode refuses the development key (kid {dev[0]!r}): its private half "
                    "is published in deploy/dev-keys/"
                )
        return keys

    def keys(self) -> dict[str, TrustedKey]:
        if self.path is None or time.monotonic() - self._checked < self.reload_seconds:
            return self._keys
        with self._lock:
            self._checked = time.monotonic()
            try:
                mtime = self._stat()
                if mtime != self._mtime:
                    self._mtime = mtime  # a broken file is reported once, then again when it changes
                    self._keys = self._checked_keys(self._read())
                    log.info("trusted keys reloaded", kids=sorted(self._keys), path=str(self.path))
            except AuthConfigError as exc:
                # Keep serving with the keys that were good; say loudly that the new ones are not.
                log.error("trusted keys not reloaded", error=str(exc), path=str(self.path))
        return self._keys
