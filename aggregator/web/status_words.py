"""The English source-health sentences of /status, said again in the reader's language.

The fetcher, the feed reader and status.py write English sentences that the JSON API and the
logs keep as they are. The /status page recognises their known shapes here and translates
them; a sentence of unknown shape is shown unchanged.
"""

from __future__ import annotations

import re

from klynge.i18n import DEFAULT_LANG, N_, catalogue, format_message, normalise_lang

PACKAGES = ("aggregator", "klynge")

_SIZE = r"[\d.]+ (?:GB|MB|kB|bytes)"
_NUMBER = r"[\d.]+"

# (shape, msgid): the first shape that matches the whole sentence wins, so the specific come
# before the general. Every named group becomes a %(name)s parameter, itself explained in turn
# (a cause inside a sentence is often another known sentence).
SHAPES: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(pattern, re.DOTALL), msgid)
    for pattern, msgid in (
        # status.py summaries
        (r"Not fetched yet\.", N_("Not fetched yet.")),
        (r"OK: (?P<n>\d+) entries\.", N_("OK: %(n)s entries.")),
        (r"OK: (?P<n>\d+) entries\. (?P<flag>.+)", N_("OK: %(n)s entries. %(flag)s")),
        (
            r"(?P<health>Stale|Failing): (?P<error>.+) \((?P<n>\d+) failures in a row, "
            r"(?P<since>never fetched successfully|last success .+? ago)"
            r"(?:; keeping its last (?P<count>\d+) good entries)?\)\.",
            N_("%(health)s: %(error)s (%(n)s failures in a row, %(since)s%(kept)s)."),
        ),
        (r"Stale", N_("Stale")),
        (r"Failing", N_("Failing")),
        (r"never fetched successfully", N_("never fetched successfully")),
        (r"last success (?P<ago>.+) ago", N_("last success %(ago)s ago")),
        (r"(?P<n>\d+) s", N_("%(n)s s")),
        (r"(?P<n>\d+) min", N_("%(n)s min")),
        (r"(?P<n>\d+) h", N_("%(n)s h")),
        # merge.py: a mass removal held back
        (
            r"This fetch would remove (?P<n>\d+) of (?P<total>\d+) upcoming entries; "
            r"they are kept until the next fetch confirms the removal\.",
            N_(
                "This fetch would remove %(n)s of %(total)s upcoming entries; "
                "they are kept until the next fetch confirms the removal."
            ),
        ),
        # parse_worker.py: a body that overran its bounds
        (
            rf"the feed took too long to read \(more than (?P<s>{_NUMBER}) s\), so it was ignored",
            N_("the feed took too long to read (more than %(s)s s), so it was ignored"),
        ),
        (
            r"the feed needed too much memory to read \(more than (?P<mb>\d+) MB\), "
            r"so it was ignored",
            N_("the feed needed too much memory to read (more than %(mb)s MB), so it was ignored"),
        ),
        (
            r"the feed reader stopped unexpectedly, so the feed was ignored",
            N_("the feed reader stopped unexpectedly, so the feed was ignored"),
        ),
        (r"the aggregator is stopping", N_("the aggregator is stopping")),
        # klynge/atom/reader.py and klynge/ical/reader.py: the entry limit (limits.max_entries)
        (
            r"The feed has more than (?P<limit>\d+) entries; only the first (?P=limit) were read\.",
            N_("The feed has more than %(limit)s entries; only the first %(limit)s were read."),
        ),
        (
            r"The calendar has (?P<total>\d+) events, more than the limit of (?P<limit>\d+); "
            r"only the first (?P=limit) were read\.",
            N_(
                "The calendar has %(total)s events, more than the limit of %(limit)s; "
                "only the first %(limit)s were read."
            ),
        ),
        # refresh.py
        (r"not a usable feed: (?P<error>.+)", N_("not a usable feed: %(error)s")),
        (r"could not be read \((?P<detail>.+)\)", N_("could not be read (%(detail)s)")),
        (
            r"the document is not well-formed XML, so it was ignored\.",
            N_("the document is not well-formed XML, so it was ignored."),
        ),
        (
            r"the document is not well-formed XML, so it was ignored\. (?P<cause>.+)",
            N_("the document is not well-formed XML, so it was ignored. %(cause)s"),
        ),
        # fetcher.py
        (rf"timed out after (?P<s>{_NUMBER}) s", N_("timed out after %(s)s s")),
        (r"could not connect: (?P<reason>.+)", N_("could not connect: %(reason)s")),
        (r"network error: (?P<reason>.+)", N_("network error: %(reason)s")),
        (r"the host name (?P<host>.+) was not found", N_("the host name %(host)s was not found")),
        (
            r"the TLS certificate is not valid \((?P<detail>.+)\)",
            N_("the TLS certificate is not valid (%(detail)s)"),
        ),
        (r"the TLS handshake failed", N_("the TLS handshake failed")),
        (r"connection refused", N_("connection refused")),
        (r"connection reset by the server", N_("connection reset by the server")),
        (r"host unreachable", N_("host unreachable")),
        (r"network unreachable", N_("network unreachable")),
        (r"timed out", N_("timed out")),
        (
            r"HTTP (?P<code>\d{3}) redirect without a Location header",
            N_("HTTP %(code)s redirect without a Location header"),
        ),
        (r"HTTP (?P<code>\d{3}) (?P<phrase>.+)", N_("HTTP %(code)s %(phrase)s")),
        (r"HTTP (?P<code>\d{3})", N_("HTTP %(code)s")),
        (
            r"too many redirects \(more than (?P<n>\d+)\)",
            N_("too many redirects (more than %(n)s)"),
        ),
        (
            rf"the response is larger than (?P<cap>{_SIZE}) \(it declares (?P<size>{_SIZE})\)",
            N_("the response is larger than %(cap)s (it declares %(size)s)"),
        ),
        (
            rf"the response is larger than (?P<cap>{_SIZE}) when decompressed",
            N_("the response is larger than %(cap)s when decompressed"),
        ),
        (
            rf"the response is larger than (?P<cap>{_SIZE})",
            N_("the response is larger than %(cap)s"),
        ),
        (
            r"the body is not valid (?P<coding>gzip|deflate): it ends too early",
            N_("the body is not valid %(coding)s: it ends too early"),
        ),
        (
            r"the body is not valid (?P<coding>gzip|deflate): data after the end",
            N_("the body is not valid %(coding)s: data after the end"),
        ),
        (
            r"the body is not valid (?P<coding>gzip|deflate) \((?P<detail>.+)\)",
            N_("the body is not valid %(coding)s (%(detail)s)"),
        ),
        (
            r"the server used a compression we do not accept \((?P<coding>.+)\); "
            r"we accept gzip and deflate",
            N_(
                "the server used a compression we do not accept (%(coding)s); "
                "we accept gzip and deflate"
            ),
        ),
        (
            r"only http and https URLs can be fetched, not (?P<url>.+)",
            N_("only http and https URLs can be fetched, not %(url)s"),
        ),
        (
            r"the server redirected to an invalid URL (?P<url>.+)",
            N_("the server redirected to an invalid URL %(url)s"),
        ),
        (
            r"the server redirected to a URL that is not http\(s\): (?P<url>.+)",
            N_("the server redirected to a URL that is not http(s): %(url)s"),
        ),
        (
            r"the server closed the connection without a complete answer",
            N_("the server closed the connection without a complete answer"),
        ),
        (
            r"the connection closed before the whole body arrived \(truncated response\)",
            N_("the connection closed before the whole body arrived (truncated response)"),
        ),
        (
            r"the server sent a malformed body \((?P<detail>.+)\)",
            N_("the server sent a malformed body (%(detail)s)"),
        ),
        (
            r"the server sent an invalid HTTP response \((?P<detail>.+)\)",
            N_("the server sent an invalid HTTP response (%(detail)s)"),
        ),
        (r"the URL is not valid", N_("the URL is not valid")),
        (r"the request failed \((?P<detail>.+)\)", N_("the request failed (%(detail)s)")),
        # klynge/atom/scan.py, klynge/atom/reader.py and klynge/ical/reader.py
        (r"the document is empty, not a feed", N_("the document is empty, not a feed")),
        (r"the document is HTML, not a feed", N_("the document is HTML, not a feed")),
        (
            r"the feed contains a DTD/entity declaration, which Klynge refuses",
            N_("the feed contains a DTD/entity declaration, which Klynge refuses"),
        ),
        (r"the document is not XML, so not a feed", N_("the document is not XML, so not a feed")),
        (
            r"the document is not well-formed XML and no feed could be recovered",
            N_("the document is not well-formed XML and no feed could be recovered"),
        ),
        (
            r"the feed could not be read \((?P<detail>.+)\)",
            N_("the feed could not be read (%(detail)s)"),
        ),
        (
            r"the document is XML but not an Atom or RSS feed \(its root is <(?P<root>.+)>\)",
            N_("the document is XML but not an Atom or RSS feed (its root is <%(root)s>)"),
        ),
        (
            r"The feed is not well-formed XML \((?P<cause>.+)\); read what could be recovered\.",
            N_("The feed is not well-formed XML (%(cause)s); read what could be recovered."),
        ),
        (
            r"The file is not an iCalendar file: no VCALENDAR\.",
            N_("The file is not an iCalendar file: no VCALENDAR."),
        ),
        (
            r"The file is not an iCalendar file: (?P<detail>.+)",
            N_("The file is not an iCalendar file: %(detail)s"),
        ),
    )
)


def explain(message: str, lang: str) -> str:
    """Return an English status sentence in `lang`, or unchanged when its shape is unknown."""
    lang = normalise_lang(lang) or DEFAULT_LANG
    for shape, msgid in SHAPES:
        match = shape.fullmatch(message)
        if match:
            params = {k: explain(v, lang) if v else "" for k, v in match.groupdict().items()}
            if "count" in match.groupdict():
                params["kept"] = _kept(match["count"], lang)
            text = catalogue(lang, PACKAGES).gettext(msgid)
            return format_message(text, params)
    return message


def _kept(count: str | None, lang: str) -> str:
    """Say that a failing source keeps its last good entries (empty when it has none)."""
    if not count:
        return ""
    msgid = N_("; keeping its last %(count)s good entries")
    return format_message(catalogue(lang, PACKAGES).gettext(msgid), {"count": count})
