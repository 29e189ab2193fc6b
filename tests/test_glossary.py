"""Both services speak alike: the Danish catalogues use the words of docs/glossary.md."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from babel.messages.pofile import read_po

ROOT = Path(__file__).resolve().parents[1]
CATALOGUES = [
    ROOT / p / "locale/da/LC_MESSAGES/messages.po" for p in ("node", "aggregator", "klynge")
]
# The word the glossary chose, and the variants found in use before it (issue 16).
REFUSED = {
    "arrangement": "begivenhed",
    r"\bføj til": "tilføj til",
    "“": "»…«",
    "”": "»…«",
    "publicer": "offentliggør",
    "indslag": "indlæg",
    "samleside": "klyngeside",
}


@pytest.mark.parametrize("path", CATALOGUES, ids=lambda p: p.parts[-5])
def test_danish_catalogue_uses_the_glossary(path: Path) -> None:
    with path.open("rb") as f:
        catalogue = read_po(f, locale="da")
    found = [
        (message.id, word, wanted)
        for message in catalogue
        if message.id
        for text in ([message.string] if isinstance(message.string, str) else message.string)
        for word, wanted in REFUSED.items()
        if re.search(word, (text or "").lower())
    ]
    assert not found, found


@pytest.mark.parametrize("path", CATALOGUES, ids=lambda p: p.parts[-5])
def test_each_danish_catalogue_starts_with_the_glossary(path: Path) -> None:
    head = path.read_text(encoding="utf-8").split("\n\n", 1)[0]
    assert head.startswith("# Glossary") and "begivenhed" in head and "»…«" in head
    assert "docs/glossary.md" in head
