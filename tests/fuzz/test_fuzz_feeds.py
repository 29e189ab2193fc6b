"""Fuzzing the feed reader: golden feeds mutated deep inside, other encodings, raw bytes.

Property: `read_feed` reads a document or refuses it with a FeedError in words, within the time
bound, and never raises anything else; what it accepts goes on through the outputs the
aggregator builds from it (the merged Atom feed and the ICS file) without an error.
"""

from __future__ import annotations

import contextlib
import io
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape, quoteattr

import pytest
from fuzz_support import budget, hard_limit, hostile_text, rrule_text
from hypothesis import event, example, given
from hypothesis import strategies as st
from lxml import etree

from klynge import feedcli
from klynge.atom.reader import ParsedFeed, read_feed
from klynge.atom.writer import FeedMeta, write_feed
from klynge.errors import FeedError
from klynge.ical.writer import write_calendar
from klynge.model import Event

pytestmark = pytest.mark.fuzz

DATA = Path(__file__).parent.parent / "data"
GOLDEN = {
    path.name: path.read_bytes()
    for path in sorted(DATA.iterdir())
    if path.suffix in (".atom", ".xml")
}
KLYNGE_NS = "https://purl.org/klynge/ns/1.0"
KLYNGE_NAMES = [
    "kind", "start", "end", "allday", "tzid", "rrule", "status", "sequence", "location",
    "street", "postcode", "locality", "organizer", "organizerurl", "expires", "related", "x",
]  # fmt: skip
ENCODINGS = [
    "utf-8", "utf-16", "utf-16-le", "utf-16-be", "utf-32", "big5", "euc-kr", "gb2312",
    "shift_jis", "iso-8859-1", "windows-1252", "koi8-r", "iso-2022-jp", "utf-7",
]  # fmt: skip
ODD_DECLARATIONS = ["x-unknown", "", "utf-8\x00", "UTF-16", "utf8", "ebcdic", "cp037", "rot13"]
OUTPUT_META = FeedMeta(
    id="urn:klynge:fuzz",
    title="Fuzz",
    self_url="http://fuzz.example/feed.atom",
    updated=datetime(2026, 12, 1, tzinfo=UTC),
)
XML_BASE = "{http://www.w3.org/XML/1998/namespace}base"
MARK = "\ue000{}\ue001"  # a placeholder replaced by raw text after serialising


def accepted_or_refused(data: bytes) -> ParsedFeed | None:
    """Read the bytes; assert they are read, or refused with a FeedError that has words."""
    with hard_limit():
        try:
            parsed = read_feed(data)
        except FeedError as e:
            assert e.message.strip()
            event("refused")
            return None
    assert all(problem.message.english().strip() for problem in parsed.problems)
    event(f"read {parsed.flavour}, {'some' if parsed.items else 'no'} items")
    return parsed


def outputs_build(parsed: ParsedFeed) -> None:
    """Build what the aggregator builds from the items: a merged feed and a calendar."""
    with hard_limit():
        feed = write_feed(OUTPUT_META, parsed.items, parsed.tombstones)
        events = [item for item in parsed.items if isinstance(item, Event)]
        calendar = write_calendar(events, name="Fuzz")
    assert feed.startswith(b"<?xml") and calendar.startswith(b"BEGIN:VCALENDAR")


# --- mutating golden feeds ----------------------------------------------------------------


def _mutations() -> st.SearchStrategy[list[tuple[Any, ...]]]:
    where = st.integers(min_value=0, max_value=200)
    hostile = st.tuples(hostile_text(), st.sampled_from(["escaped", "raw", "cdata"]))
    one = st.one_of(
        st.tuples(st.just("text"), where, hostile),
        st.tuples(
            st.just("attr"),
            where,
            st.sampled_from(["href", "rel", "type", "term", "ref", "when", "label", "xml:base"]),
            hostile_text(),
        ),
        st.tuples(st.just("remove"), where),
        st.tuples(st.just("duplicate"), where),
        st.tuples(st.just("klynge"), where, st.sampled_from(KLYNGE_NAMES), hostile),
        st.tuples(st.just("rrule"), where, rrule_text()),
        st.tuples(st.just("nest"), where, st.integers(min_value=1, max_value=3_000)),
    )
    return st.lists(one, min_size=1, max_size=8)


def _apply(root: Any, mutation: tuple[Any, ...], raws: list[str]) -> None:
    elements = list(root.iter(etree.Element))
    target = elements[mutation[1] % len(elements)]
    kind = mutation[0]
    if kind == "text":
        text, how = mutation[2]
        target.text = MARK.format(len(raws))
        raws.append(_raw(text, how))
    elif kind == "attr":
        name = XML_BASE if mutation[2] == "xml:base" else mutation[2]
        target.set(name, MARK.format(len(raws)))
        raws.append(escape(mutation[3], {'"': "&quot;"}))
    elif kind == "remove" and target is not root:
        target.getparent().remove(target)
    elif kind == "duplicate" and target is not root:
        target.addnext(_copy(target))
    elif kind in ("klynge", "rrule"):
        name, (text, how) = ("rrule", (mutation[2], "escaped")) if kind == "rrule" else mutation[2:]
        child = etree.SubElement(target, f"{{{KLYNGE_NS}}}{name}")
        child.text = MARK.format(len(raws))
        raws.append(_raw(text, how))
    elif kind == "nest":
        target.text = MARK.format(len(raws))
        raws.append("<x>" * mutation[2] + "deep" + "</x>" * mutation[2])


def _copy(element: Any) -> Any:
    return etree.fromstring(etree.tostring(element))


def _raw(text: str, how: str) -> str:
    if how == "escaped":
        return escape(text)
    if how == "cdata":
        return "<![CDATA[" + text.replace("]]>", "]]]]><![CDATA[>") + "]]>"
    return text


def mutated(name: str, mutations: list[tuple[Any, ...]]) -> str:
    """Return a golden feed with the mutations applied, as text without a declaration."""
    root = etree.fromstring(GOLDEN[name])
    raws: list[str] = []
    for mutation in mutations:
        _apply(root, mutation, raws)
    text = etree.tostring(root, encoding="unicode")
    for index, raw in enumerate(raws):
        text = text.replace(MARK.format(index), raw)
    return text


def encoded(text: str, encoding: str, declared: str | None) -> bytes:
    """Return the document in `encoding`, declared as `declared` (None: no declaration)."""
    if declared is not None:
        text = f"<?xml version={quoteattr('1.0')} encoding={quoteattr(declared)}?>\n{text}"
    return text.encode(encoding, errors="xmlcharrefreplace" if encoding != "utf-7" else "replace")


@st.composite
def golden_mutants(draw: st.DrawFn) -> bytes:
    text = mutated(draw(st.sampled_from(sorted(GOLDEN))), draw(_mutations()))
    encoding = draw(st.sampled_from(ENCODINGS))
    declared = draw(st.sampled_from([encoding] * 6 + [None, *ODD_DECLARATIONS]))
    try:
        data = encoded(text, encoding, declared)
    except UnicodeEncodeError:  # a lone surrogate: write it as CESU-8-style bytes instead
        data = text.encode("utf-8", "surrogatepass")
    damage = draw(st.sampled_from(["none", "none", "none", "cut", "splice", "prefix"]))
    if damage == "none":
        return data
    at = draw(st.integers(min_value=0, max_value=len(data)))
    if damage == "cut":
        return data[:at]
    splice = draw(st.sampled_from(SPLICES))
    return splice + data if damage == "prefix" else data[:at] + splice + data[at:]


SPLICES = [b"\xed\xa0\x80", b"\xff\xfe", b"\xef\xbb\xbf", b"\x00", b"\xc3", b"\r", b"&", b"<"]


@budget(25)
@given(golden_mutants())
@example(b"<feed xmlns='http://www.w3.org/2005/Atom'><title>&#xD800;</title></feed>")
def test_mutated_golden_feeds_are_read_or_refused_in_words(data: bytes) -> None:
    parsed = accepted_or_refused(data)
    if parsed is not None:
        outputs_build(parsed)


@budget(30)
@given(st.sampled_from(sorted(GOLDEN)), st.sampled_from(ENCODINGS), st.booleans())
def test_golden_feeds_in_other_encodings_keep_their_entries(
    name: str, encoding: str, declare: bool
) -> None:
    text = GOLDEN[name].decode("utf-8").split("?>", 1)[1].lstrip()
    plain = read_feed(GOLDEN[name])
    data = encoded(text, encoding, encoding if declare else None)
    parsed = accepted_or_refused(data)
    if declare or (encoding.startswith("utf-16") and data[:2] in (b"\xff\xfe", b"\xfe\xff")):
        # A declared (or byte-order-marked) encoding is honoured: the same entries come back.
        assert parsed is not None
        assert sorted(i.title for i in parsed.items) == sorted(i.title for i in plain.items)


RAW_PREFIXES = [
    b"",
    b"<?xml version='1.0'?>",
    b"<feed xmlns='http://www.w3.org/2005/Atom'>",
    b"<rss version='2.0'><channel>",
    b"<feed xmlns='http://www.w3.org/2005/Atom' xmlns:k='https://purl.org/klynge/ns/1.0'><entry>",
    b"\xef\xbb\xbf<",
    b"\xff\xfe<\x00",
    b"<!DOCTYPE feed [<!ENTITY a 'aaaa'>]>",
    b"<html>",
]


@budget(60)
@given(st.sampled_from(RAW_PREFIXES), st.binary(max_size=2_000))
@example(b"", b"")
@example(b"<?xml version='1.0' encoding='x-unknown'?>", b"<feed/>")
@example(b"<?xml version='1.0' encoding='big5'?>", b"<feed/>")
@example(b"<?xml version='1.0' encoding='utf-8\x00'?>", b"<feed/>")
def test_raw_bytes_are_read_or_refused_in_words(prefix: bytes, tail: bytes) -> None:
    parsed = accepted_or_refused(prefix + tail)
    if parsed is not None:
        outputs_build(parsed)


# --- `klynge feed check` on random bytes, in-process through its real main() ----------------


def run_cli(argv: list[str]) -> tuple[int, str, str]:
    """Run `klynge feed ARGV` in-process; return (exit code, stdout, stderr)."""
    out, err = io.BytesIO(), io.StringIO()
    text = io.TextIOWrapper(out, encoding="utf-8")
    with contextlib.redirect_stdout(text), contextlib.redirect_stderr(err), hard_limit():
        code = feedcli.main(argv)
    text.flush()
    return code, out.getvalue().decode("utf-8"), err.getvalue()


@budget(15)
@given(
    st.one_of(golden_mutants(), st.binary(max_size=1_000)),
    st.sampled_from(["check", "to-ics"]),
)
def test_feed_check_answers_in_words(tmp_path: Path, data: bytes, command: str) -> None:
    path = tmp_path / "feed.atom"
    path.write_bytes(data)
    code, out, err = run_cli([command, str(path)])
    assert code in (0, 1), (code, out, err)
    if code == 1 and not out:
        # Refused: one line on stderr saying why, never a traceback.
        assert err.strip() and len(err.strip().splitlines()) == 1, err
        assert "Traceback" not in err
    elif command == "check":
        assert out.startswith("feed: ") and "problems: " in out
