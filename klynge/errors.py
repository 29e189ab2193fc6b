"""The error hierarchy: every error carries an HTTP status, a code and a clear message.

The message is a `klynge.messages.Message` (`.detail`), rendered in the reader's language
where the error is shown; `.message` is its English text, for logs and old callers.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from klynge.messages import Message, as_message, define

# Field name -> what is wrong with it (a plain text is a msgid not given a code yet).
FieldErrors = dict[str, Message | str]

# A validation error's own message, built from its fields: "start: …; end: …".
FIELD = define("errors.field", "%(field)s: %(problem)s")
AND = define("errors.and", "%(first)s; %(rest)s")


class KlyngeError(Exception):
    """Base of all domain errors; one middleware renders them as JSON or HTML."""

    status = 500
    code = "internal"

    def __init__(
        self, message: Message | str, *, fields: Mapping[str, Message | str] | None = None
    ) -> None:
        self.detail = as_message(message)
        self.message = self.detail.english()
        super().__init__(self.message)
        self.fields: dict[str, Message] = {k: as_message(v) for k, v in (fields or {}).items()}

    def to_json(self) -> dict[str, Any]:
        """Return the pinned JSON error shape of design.md, in English, with the codes."""
        return {"error": error_json(self.code, self.detail, self.fields)}


def error_json(
    code: str, detail: Message, fields: Mapping[str, Message], lang: str = "en"
) -> dict[str, Any]:
    """Return the body of the pinned error shape: words in `lang`, codes and English beside.

    `code`, `message` and `fields` (field -> words) are the shape design.md pins; `detail`
    and `field_details` add each message's code, parameters and English text (docs/api.md).
    """
    body: dict[str, Any] = {"code": code, "message": detail.render(lang)}
    if fields:
        body["fields"] = {k: v.render(lang) for k, v in fields.items()}
        body["field_details"] = {k: v.to_json() for k, v in fields.items()}
    body["detail"] = detail.to_json()
    return body


class InvalidValue(ValueError):
    """A value that cannot be parsed (a time, a zone); `detail` says why, as a message."""

    def __init__(self, detail: Message) -> None:
        super().__init__(detail.english())
        self.detail = detail


def problem_of(error: Exception) -> Message:
    """Return the message of an error: its own for ours, its English text for others."""
    detail = getattr(error, "detail", None)
    return detail if isinstance(detail, Message) else as_message(str(error))


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

    def __init__(self, fields: Mapping[str, Message | str], message: Message | str = "") -> None:
        super().__init__(message or _joined(fields), fields=fields)


def _joined(fields: Mapping[str, Message | str]) -> Message:
    """Return "name: problem; name: problem" as one message (empty fields: an empty text)."""
    parts = [Message(FIELD, {"field": k, "problem": as_message(v)}) for k, v in fields.items()]
    if not parts:
        return as_message("")
    joined = parts[-1]
    for part in reversed(parts[:-1]):
        joined = Message(AND, {"first": part, "rest": joined})
    return joined


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
