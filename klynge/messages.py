"""Problems as data: a message is a code with parameters, rendered in a language at the edge.

Code that finds a problem (fetcher, readers, merge, model, storage) makes a `Message`; it is
stored and sent as code and parameters, and turned into words only where someone reads it
(a page, a CLI line, a log), from the English catalogue below and the Danish `.po` files.
The pattern is Miniflux's `internal/locale/error.go`, rendered per request, not when stored.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from klynge.i18n import DEFAULT_LANG, SERVICE_PACKAGES, catalogue, normalise_lang

Param = str | int | float


@dataclass(frozen=True)
class Text:
    """The English words of one code: `%(name)s` placeholders, a plural counted by `count`."""

    singular: str
    plural: str = ""
    count: str = ""  # the parameter that chooses between singular and plural


CATALOGUE: dict[str, Text] = {}


def define(code: str, singular: str, plural: str = "", count: str = "") -> str:
    """Add a code and its English words to the catalogue; return the code."""
    if code in CATALOGUE and CATALOGUE[code] != Text(singular, plural, count):
        raise ValueError(f"message code {code!r} is defined twice with different words")
    CATALOGUE[code] = Text(singular, plural, count)
    return code


# An old stored English sentence (written before codes existed): shown as it was.
LEGACY = define("legacy.text", "%(text)s")


@dataclass(frozen=True)
class Message:
    """One problem or notice: a catalogue code, its parameters, and an optional cause."""

    code: str
    params: Mapping[str, Param] = field(default_factory=lambda: MappingProxyType({}))
    cause: Message | None = None

    def render(self, lang: str = "en") -> str:
        """Return the message (and its cause) in `lang`, with the right plural."""
        text = CATALOGUE.get(self.code)
        if text is None:
            return self.code
        words = _words(text, lang, self.params)
        if self.cause is not None:
            words = f"{words}: {self.cause.render(lang)}"
        return words

    def english(self) -> str:
        """Return the message in English (logs, the JSON API's `message`)."""
        return self.render("en")

    def to_json(self) -> dict[str, Any]:
        """Return code, parameters, cause and the English message as JSON-ready values."""
        body: dict[str, Any] = {"code": self.code, "params": dict(self.params)}
        if self.cause is not None:
            body["cause"] = self.cause.to_json()
        body["message"] = self.english()
        return body

    @classmethod
    def from_json(cls, value: object) -> Message:
        """Read a stored message; an old plain string becomes a `legacy.text` message."""
        if isinstance(value, str):
            return cls(LEGACY, {"text": value})
        if not isinstance(value, Mapping) or not isinstance(value.get("code"), str):
            return cls(LEGACY, {"text": str(value)})
        params = value.get("params")
        cause = value.get("cause")
        return cls(
            value["code"],
            {k: v for k, v in params.items() if isinstance(v, str | int | float)}
            if isinstance(params, Mapping)
            else {},
            cls.from_json(cause) if cause is not None else None,
        )


def _words(text: Text, lang: str, params: Mapping[str, Param]) -> str:
    code = normalise_lang(lang) or DEFAULT_LANG
    cat = catalogue(code, SERVICE_PACKAGES)
    if text.plural and text.count:
        count = params.get(text.count, 0)
        template = cat.ngettext(text.singular, text.plural, int(count))
    else:
        template = cat.gettext(text.singular)
    try:
        return template % dict(params) if params else template
    except (KeyError, TypeError, ValueError):
        return template  # a parameter missing from an old stored message: words without it
