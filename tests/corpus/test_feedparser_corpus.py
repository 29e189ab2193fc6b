"""`klynge feed check` over a vendored subset of feedparser's own test corpus.

tests/data/feedparser-corpus/ holds 44 files of feedparser 6.0.14's tests/ (BSD-2, its LICENSE
beside them): multi-byte and single-byte encodings with and without byte order marks, unknown
encoding names, RSS 2.0 in the userland namespaces, ill-formed and compressed documents. The
whole corpus (2,248 files) runs with `python tests/corpus/run_feedparser_corpus.py PATH`.
"""

from __future__ import annotations

import io
from pathlib import Path

import feedparser
import pytest
from run_feedparser_corpus import LIMIT_SECONDS, feed_files, run

from klynge.atom.entries import plain_text
from klynge.atom.reader import read_feed
from klynge.errors import FeedError

CORPUS = Path(__file__).parent.parent / "data" / "feedparser-corpus"
# Each refused file and the code of the words that refuse it.
REFUSED = {
    "compression/deflate.z": "feed.compressed",
    "compression/gzip.gz": "feed.compressed",
    "compression/gzip-not-compressed.gz": "feed.other_namespace",  # <feed> in no namespace
    "wellformed/atom/atom_namespace_2.xml": "feed.other_namespace",  # a pre-Atom namespace
    "wellformed/cdf/channel_title.xml": "feed.other_root",  # Microsoft CDF
    "wellformed/rss/entity_in_doctype.xml": "feed.dtd",  # every DTD is refused
    "illformed/aaa_illformed.xml": "feed.not_well_formed",  # `</rss` cut short, no channel
    "illformed/rss_empty_document.xml": "feed.not_well_formed",  # only a comment
}
READ = sorted(
    str(p.relative_to(CORPUS))
    for p in feed_files(CORPUS)
    if str(p.relative_to(CORPUS)) not in REFUSED
)


def test_every_file_is_read_or_refused_in_words_without_a_traceback() -> None:
    figures = run(CORPUS)
    assert figures.tracebacks == []
    assert (figures.files, figures.read, figures.refused) == (44, 36, 8)
    assert figures.slowest[0] < LIMIT_SECONDS


@pytest.mark.parametrize("name", READ)
def test_read_file_has_feedparsers_titles(name: str) -> None:
    data = (CORPUS / name).read_bytes()
    expected = feedparser.parse(io.BytesIO(data), sanitize_html=False)
    parsed = read_feed(data)
    assert parsed.meta.title == expected.feed.get("title", "").strip()
    assert parsed.meta.subtitle == plain_text(expected.feed.get("subtitle", "")).strip()
    assert parsed.problems or not expected.bozo  # a document feedparser doubts has a warning


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_refused_file_is_refused_with_its_code(name: str) -> None:
    with pytest.raises(FeedError) as refused:
        read_feed((CORPUS / name).read_bytes())
    assert refused.value.detail.code == REFUSED[name]


@pytest.mark.parametrize("n", [1, 2, 3, 4])
def test_rss_in_a_userland_namespace_is_read(n: int) -> None:
    parsed = read_feed((CORPUS / f"wellformed/rss/rss_namespace_{n}.xml").read_bytes())
    assert parsed.flavour == "rss" and parsed.complete
    assert parsed.meta.subtitle == "Example description"


def test_rss2_namespace_with_modules_keeps_its_item() -> None:
    data = (CORPUS / "wellformed/namespace/rss2.0NSwithModules.xml").read_bytes()
    parsed = read_feed(data)
    assert parsed.complete and parsed.problems == ()
    assert [item.title for item in parsed.items] == ["Test Item - RSS2.0 w/ NS"]


@pytest.mark.parametrize(
    "name",
    [
        "encoding/big5.xml",
        "encoding/euc-kr.xml",
        "encoding/http_application_atom_xml_gb2312_encoding.xml",
        "encoding/utf-16le.xml",
        "encoding/utf-16be-autodetect.xml",
        "encoding/utf-32le-bom.xml",
        "encoding/ucs-2.xml",
        "encoding/x80_windows-1252.xml",
    ],
)
def test_multi_byte_and_single_byte_feeds_are_read_whole(name: str) -> None:
    parsed = read_feed((CORPUS / name).read_bytes())
    assert parsed.complete and parsed.problems == ()  # by the XML pass, not recovered
