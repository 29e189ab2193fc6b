"""Danish phone numbers in shown text become `tel:` links, so a tap on a phone calls them."""

from __future__ import annotations

import re

from markupsafe import Markup

# A Danish number is eight digits, written "12 34 56 78", "1234 5678" or "12345678", with an
# optional +45 / 0045. Only spaces separate the groups: "05-12-2026" is a date, not a number.
_PHONE_RE = re.compile(
    r"(?<![\w+.,/-])(?:(?:\+|00)45 ?)?(?:\d{2} ?\d{2} ?\d{2} ?\d{2}|\d{4} \d{4})(?![\w.,/-]*\d)"
)
# "2026 2027" is a season, not a number: two years apart is never linked.
_YEARS_RE = re.compile(r"(?:19|20)\d\d (?:19|20)\d\d")
# Tags, and whole links (a number already inside <a>…</a> stays as the author linked it).
_SKIP_RE = re.compile(r"(<a\b.*?</a\s*>|<[^>]*>)", re.IGNORECASE | re.DOTALL)


def _linked(match: re.Match[str]) -> str:
    number = match.group(0)
    if _YEARS_RE.fullmatch(number):
        return number
    digits = re.sub(r"\D", "", number)[-8:]
    return f'<a href="tel:+45{digits}">{number}</a>'


def tel_links(html: str | None) -> Markup:
    """Return sanitised `html` with each Danish phone number outside a link made a tel: link."""
    pieces = _SKIP_RE.split(html or "")
    # split() with one group puts the text at even indexes and the tags/links at odd ones.
    return Markup("".join(p if n % 2 else _PHONE_RE.sub(_linked, p) for n, p in enumerate(pieces)))
