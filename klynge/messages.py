"""Problems as data: a message is a code with parameters, rendered in a language at the edge.

Code that finds a problem (fetcher, readers, merge, model, storage) makes a `Message`; it is
stored and sent as code and parameters, and turned into words only where someone reads it
(a page, a CLI line, a log), from the English catalogue below and the Danish `.po` files.
The pattern is Miniflux's `internal/locale/error.go`, rendered per request, not when stored.

A parameter may itself be a message (the error inside a health summary); it is rendered in
the same language.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Union

from babel.numbers import format_decimal

from klynge.i18n import DEFAULT_LANG, SERVICE_PACKAGES, catalogue, normalise_lang

Param = Union[str, int, float, "Message"]


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
    if bool(plural) != bool(count):
        raise ValueError(f"message code {code!r}: a plural needs the parameter that counts")
    CATALOGUE[code] = Text(singular, plural, count)
    return code


# A plain English text without a code: a stored sentence written before codes existed, or a
# caller not converted yet. It is shown translated when the catalogue knows it, else as given.
LEGACY = define("legacy.text", "%(text)s")


@dataclass(frozen=True)
class Message:
    """One problem or notice: a catalogue code, its parameters, and an optional cause."""

    code: str
    params: Mapping[str, Param] = field(default_factory=dict)  # a dict pickles (parse worker)
    cause: Message | None = None

    def __hash__(self) -> int:
        return hash((self.code, tuple(sorted(self.params.items())), self.cause))

    def render(self, lang: str = "en") -> str:
        """Return the message (and its cause) in `lang`, with the right plural."""
        text = CATALOGUE.get(self.code)
        if text is None:
            return self.code
        words = _words(self.code, text, lang, self.params)
        if self.cause is not None:
            words = f"{words}: {self.cause.render(lang)}"
        return words

    def english(self) -> str:
        """Return the message in English (logs, the JSON API's `message`)."""
        return self.render("en")

    def __str__(self) -> str:
        return self.english()

    def to_json(self) -> dict[str, Any]:
        """Return code, parameters, cause and the English message as JSON-ready values."""
        params = {k: v.to_json() if isinstance(v, Message) else v for k, v in self.params.items()}
        body: dict[str, Any] = {"code": self.code, "params": params}
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
        raw = value.get("params")
        params = {str(k): _param(v) for k, v in raw.items()} if isinstance(raw, Mapping) else {}
        cause = value.get("cause")
        return cls(
            value["code"],
            {k: v for k, v in params.items() if v is not None},
            cls.from_json(cause) if cause is not None else None,
        )


def text(value: str) -> Message:
    """Wrap a plain English text (a msgid or an old sentence) as a message."""
    return Message(LEGACY, {"text": value})


def as_message(value: Message | str) -> Message:
    """Return `value` as a message; a plain text becomes a `legacy.text` one."""
    return value if isinstance(value, Message) else text(value)


def optional(value: object) -> Message | None:
    """Read a stored optional message: None or "" (nothing was wrong) stay None."""
    return None if value is None or value == "" else Message.from_json(value)


def _param(value: object) -> Param | None:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, str | int | float):
        return value
    if isinstance(value, Mapping) and isinstance(value.get("code"), str):
        return Message.from_json(value)
    return None


def _words(code: str, text: Text, lang: str, params: Mapping[str, Param]) -> str:
    cat = catalogue(normalise_lang(lang) or DEFAULT_LANG, SERVICE_PACKAGES)
    if code == LEGACY:
        plain = str(params.get("text", ""))
        return cat.gettext(plain) if plain else ""  # gettext("") is the catalogue's header
    if text.plural and text.count:
        count = params.get(text.count, 0)
        template = cat.ngettext(text.singular, text.plural, _count(count))
    else:
        template = cat.gettext(text.singular)
    values = {k: _value(v, lang) for k, v in params.items()}
    try:
        return template % values if values else template
    except (KeyError, TypeError, ValueError):
        return template  # a parameter missing from an old stored message: words without it


def _value(value: Param, lang: str) -> Param:
    """Return a parameter for its placeholder: a message or a float in the language's words."""
    if isinstance(value, Message):
        return value.render(lang)
    if isinstance(value, float):  # "0,5 sekunder", not "0.5 sekunder"
        return format_decimal(value, locale=normalise_lang(lang) or DEFAULT_LANG)
    return value


def _count(value: Param) -> int:
    try:
        return int(value) if not isinstance(value, Message) else 0
    except ValueError:
        return 0
