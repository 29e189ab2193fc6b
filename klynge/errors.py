"""The error hierarchy: every error carries an HTTP status, a code and a clear message."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


class KlyngeError(Exception):
    """Base of all domain errors; one middleware renders them as JSON or HTML."""

    status = 500
    code = "internal"

    def __init__(self, message: str, *, fields: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.fields: dict[str, str] = dict(fields or {})

    def to_json(self) -> dict[str, Any]:
        """Return the pinned JSON error shape of design.md."""
        body: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.fields:
            body["fields"] = dict(self.fields)
        return {"error": body}


class BadRequest(KlyngeError):
    status = 400
    code = "bad_request"


class Unauthorized(KlyngeError):
    status = 401
    code = "unauthorized"


class Forbidden(KlyngeError):
    status = 403
    code = "forbidden"


class NotFound(KlyngeError):
    status = 404
    code = "not_found"


class Conflict(KlyngeError):
    status = 409
    code = "conflict"


class TooLarge(KlyngeError):
    status = 413
    code = "too_large"


class ValidationError(KlyngeError):
    """Invalid input; `fields` maps each bad field to one clear message."""

    status = 422
    code = "invalid"

    def __init__(self, fields: Mapping[str, str], message: str = "") -> None:
        text = message or "; ".join(f"{k}: {v}" for k, v in fields.items())
        super().__init__(text, fields=fields)


class FeedError(KlyngeError):
    """A document that is not a usable feed at all (not XML, HTML, empty)."""

    status = 422
    code = "bad_feed"


class StorageError(KlyngeError):
    """A damaged or unreadable data file."""

    code = "storage"


class DataDirLocked(KlyngeError):
    """Another process holds the data directory."""

    status = 409
    code = "locked"


class ConfigError(KlyngeError):
    """A missing or invalid configuration file or setting."""

    code = "config"
