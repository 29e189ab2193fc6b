"""Languages and message catalogues: Danish first, English available.

Msgids are English; Danish lives in `<package>/locale/da/LC_MESSAGES/messages.po`. Catalogues
are compiled in memory with babel at start (no .mo files to keep in sync). Run
`python -m klynge.i18n check` to list msgids used in code and templates that lack a Danish
translation.
"""

from __future__ import annotations

import ast
import importlib.util
import io
import re
import sys
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import date, datetime, time
from functools import cache
from pathlib import Path
from typing import Any

from babel.core import negotiate_locale
from babel.dates import format_date
from babel.messages.extract import extract_python
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import NullTranslations, Translations

LANGS = ("da", "en")
DEFAULT_LANG = "da"
LANG_NAMES = {"da": "Dansk", "en": "English"}
SERVICE_PACKAGES = ("klynge", "node", "aggregator")

# Python call names whose string argument is a msgid, with the argument's position (1-based):
# `_("…")`, `N_("…")`, `translate(lang, "…")`, `gettext(request, "…")` (klynge.web.gettext),
# `define("code", "…", "plural…", count=…)` (klynge.messages; the plural is in the same entry).
PY_KEYWORDS: dict[str, tuple[int, ...] | None] = {
    "_": None,
    "N_": None,
    "translate": (2,),
    "gettext": (2,),
    "define": (2,),
}
TEMPLATE_KEYWORDS = ("_", "gettext", "ngettext")
_ACCEPT_RE = re.compile(r"^\s*([A-Za-z]{1,8}(?:-[A-Za-z0-9]{1,8})*|\*)\s*(?:;\s*q=([0-9.]+))?")


def N_(msgid: str) -> str:
    """Mark `msgid` for translation without translating it (the check finds it)."""
    return msgid


def normalise_lang(value: str | None) -> str | None:
    """Return a supported language code for `value` (e.g. "EN" -> "en"), or None."""
    if not value:
        return None
    code = value.strip().lower()[:2]
    return code if code in LANGS else None


def parse_accept_language(header: str) -> list[str]:
    """Return the language tags of an Accept-Language header, most preferred first."""
    weighted: list[tuple[float, int, str]] = []
    for n, part in enumerate(header.split(",")[:20]):
        match = _ACCEPT_RE.match(part)
        if not match:
            continue
        try:
            q = float(match.group(2)) if match.group(2) else 1.0
        except ValueError:
            continue
        if q > 0:
            weighted.append((-q, n, match.group(1)))
    return [tag for _, _, tag in sorted(weighted)]


def negotiate(accept_language: str) -> str | None:
    """Return the best supported language for an Accept-Language header, or None."""
    tags = [t for t in parse_accept_language(accept_language) if t != "*"]
    found = negotiate_locale(tags, list(LANGS), sep="-", aliases={})
    return normalise_lang(found)


def choose_lang(
    query: str | None, cookie: str | None, accept_language: str, default: str = DEFAULT_LANG
) -> str:
    """Pick the language: `?lang=`, the `lang` cookie, Accept-Language, then `default`."""
    return (
        normalise_lang(query)
        or normalise_lang(cookie)
        or negotiate(accept_language)
        or normalise_lang(default)
        or DEFAULT_LANG
    )


def package_dir(package: str) -> Path | None:
    """Return the folder of an importable package (regular or namespace), or None."""
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        return None
    for location in (spec.submodule_search_locations or []) if spec else []:
        if Path(location).is_dir():
            return Path(location)
    return None


def po_file(package: str, lang: str) -> Path | None:
    """Return the `.po` file of `package` for `lang`, or None when it has none."""
    root = package_dir(package)
    path = root / "locale" / lang / "LC_MESSAGES" / "messages.po" if root else None
    return path if path and path.is_file() else None


def _compile(po: Path, lang: str) -> Translations:
    with po.open("rb") as f:
        catalog = read_po(f, locale=lang)
    buffer = io.BytesIO()
    write_mo(buffer, catalog)  # fuzzy entries are left out, as msgfmt does
    buffer.seek(0)
    return Translations(buffer)


@cache
def catalogue(lang: str, packages: tuple[str, ...] = ("klynge",)) -> NullTranslations:
    """Return the merged catalogue for `lang`; earlier packages override later ones."""
    merged: Translations | None = None
    for package in reversed(packages):
        po = po_file(package, lang)
        if po is None:
            continue
        compiled = _compile(po, lang)
        merged = compiled if merged is None else merged.merge(compiled)
    return merged if merged is not None else NullTranslations()


def format_message(text: str, params: dict[str, Any]) -> str:
    """Fill `%(name)s` placeholders; text without params is returned untouched."""
    return text % params if params else text


def translate(lang: str, msgid: str, **params: Any) -> str:
    """Translate an English msgid into `lang` with klynge's catalogue and fill `%(x)s` params."""
    return format_message(catalogue(normalise_lang(lang) or DEFAULT_LANG).gettext(msgid), params)


def translate_fields(
    lang: str, fields: Mapping[str, Any], tr: NullTranslations | None = None
) -> dict[str, str]:
    """Say every message of a field -> message map (ValidationError.fields) in `lang`.

    A `klynge.messages.Message` renders itself; a plain msgid is looked up in `tr`.
    """
    cat = tr or catalogue(normalise_lang(lang) or DEFAULT_LANG, SERVICE_PACKAGES)
    return {name: _say(message, lang, cat) for name, message in fields.items()}


def _say(message: Any, lang: str, cat: NullTranslations) -> str:
    render = getattr(message, "render", None)
    return str(render(lang)) if callable(render) else cat.gettext(str(message))


# --- dates and times in Danish and English (babel, CLDR data) ------------------------------

LOCALES = {"da": "da_DK", "en": "en_GB"}


def _date(value: date, lang: str, da: str, en: str) -> str:
    code = normalise_lang(lang) or DEFAULT_LANG
    return format_date(value, da if code == "da" else en, locale=LOCALES[code])


def date_long(value: date, lang: str, year: bool = False) -> str:
    """Format "lørdag 12. december" / "Saturday 12 December" (with the year if asked)."""
    if year:
        return _date(value, lang, "EEEE d. MMMM y", "EEEE d MMMM y")
    return _date(value, lang, "EEEE d. MMMM", "EEEE d MMMM")


def date_short(value: date, lang: str, year: bool = False) -> str:
    """Format "12. dec." / "12 Dec" (with the year if asked)."""
    if year:
        return _date(value, lang, "d. MMM y", "d MMM y")
    return _date(value, lang, "d. MMM", "d MMM")


def weekday(value: date, lang: str) -> str:
    """Format the weekday: "lørdag" / "Saturday"."""
    return _date(value, lang, "EEEE", "EEEE")


def month_label(value: date, lang: str) -> str:
    """Format month and year: "december 2026" / "December 2026"."""
    return _date(value, lang, "LLLL y", "LLLL y")


def week_label(value: date, lang: str) -> str:
    """Format the ISO 8601 week: "uge 49" / "week 49"."""
    week = value.isocalendar().week
    return f"uge {week}" if (normalise_lang(lang) or DEFAULT_LANG) == "da" else f"week {week}"


def time_short(value: datetime | time) -> str:
    """Format a time of day on the 24-hour clock ("19:30") in the value's own zone."""
    return value.strftime("%H:%M")


def datetime_iso(value: date) -> str:
    """Format for `<time datetime>`: RFC 3339 with offset, or YYYY-MM-DD for dates."""
    if isinstance(value, datetime):
        return value.isoformat(timespec="seconds")
    return value.isoformat()


# --- msgid extraction for the completeness check -------------------------------------------


def template_msgids(path: Path) -> Iterator[str]:
    """Yield the msgids used in one Jinja template (`_()`, `gettext()`, `{% trans %}`)."""
    from jinja2.ext import babel_extract

    with path.open("rb") as f:
        for _line, _func, message, _comments in babel_extract(f, TEMPLATE_KEYWORDS, [], {}):
            yield from _strings(message)


def python_msgids(path: Path) -> Iterator[str]:
    """Yield the msgids marked in one Python file (see PY_KEYWORDS)."""
    with path.open("rb") as f:
        for _line, func, args, _comments in extract_python(f, PY_KEYWORDS, [], {}):
            spec = PY_KEYWORDS.get(str(func))
            index = spec[0] - 1 if spec else 0
            values = list(args) if isinstance(args, tuple | list) else [args]
            if index < len(values) and isinstance(values[index], str):
                yield values[index]


def model_msgids(path: Path) -> Iterator[str]:
    """Yield the validation messages of a model module: string values of error dicts/ValueErrors."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        candidates: list[ast.expr | None] = []
        if isinstance(node, ast.Dict):
            candidates = list(node.values)
        elif isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Subscript):
            candidates = [node.value]
        elif isinstance(node, ast.Call) and getattr(node.func, "id", "") == "ValueError":
            candidates = list(node.args)
        yield from (text for c in candidates if (text := _message(c)))


def _message(node: ast.expr | None) -> str:
    # Messages are sentences: a constant string with a space in it.
    if isinstance(node, ast.Constant) and isinstance(node.value, str) and " " in node.value:
        return node.value
    return ""


def _strings(message: str | tuple[str | None, ...] | None) -> Iterator[str]:
    if isinstance(message, str):
        yield message
    elif isinstance(message, tuple):
        yield from (m for m in message if isinstance(m, str))


def package_msgids(package: str) -> set[str]:
    """Return every msgid used in `package`'s templates and Python files."""
    root = package_dir(package)
    if root is None:
        return set()
    found: set[str] = set()
    for path in sorted(root.rglob("*.html")):
        found.update(template_msgids(path))
    for path in sorted(root.rglob("*.py")):
        found.update(python_msgids(path))
        if path.name == "model.py":
            found.update(model_msgids(path))
    return found


def missing_msgids(package: str, lang: str = "da") -> list[str]:
    """Return the msgids of `package` without a translation in its merged `lang` catalogue."""
    packages = (package,) if package == "klynge" else (package, "klynge")
    cat = catalogue(lang, packages)
    return sorted(m for m in package_msgids(package) if m and not _translated(cat, m))


def _translated(cat: NullTranslations, msgid: str) -> bool:
    catalog: dict[Any, Any] = getattr(cat, "_catalog", {})
    return bool(catalog.get(msgid)) or bool(catalog.get((msgid, 0)))


def existing_packages(names: Iterable[str] = SERVICE_PACKAGES) -> list[str]:
    """Return the packages among `names` that can be imported from here."""
    return [name for name in names if package_dir(name) is not None]


def check(packages: Sequence[str]) -> int:
    """Print missing Danish translations per package; return the number missing."""
    total = 0
    for package in packages:
        for msgid in missing_msgids(package):
            print(f"{package}: missing Danish for {msgid!r}")
            total += 1
    return total


def main(argv: list[str]) -> int:
    """Run `python -m klynge.i18n check [PACKAGE...]`; exit 1 when translations are missing."""
    if not argv or argv[0] != "check":
        print(
            "usage: python -m klynge.i18n check [PACKAGE...]\n"
            "example: python -m klynge.i18n check klynge node",
            file=sys.stderr,
        )
        return 2
    packages = argv[1:] or existing_packages()
    missing = check(packages)
    print(f"{missing} missing in {', '.join(packages)}" if missing else "all msgids translated")
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
