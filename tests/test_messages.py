"""Every message code through both catalogues: English words, Danish words, plurals, params.

The codes are defined by `klynge.messages.define` in the modules that own them, so every
module of the three packages is imported first. A code whose Danish is missing, fuzzy, the
English again (outside a short allow-list) or with other placeholders fails here, as does a
`Message(CODE, {...})` in the source whose parameters are not the code's placeholders.
"""

from __future__ import annotations

import ast
import importlib
import pkgutil
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from babel.messages.pofile import read_po

from klynge import i18n
from klynge.messages import CATALOGUE, LEGACY, Message, Text, define, text

PACKAGES = ("klynge", "node", "aggregator")
# Codes whose Danish is rightly the English: only placeholders and punctuation.
SAME_IN_DANISH = {
    LEGACY,
    "http.os_error",
    "errors.field",
    "errors.and",
    "storage.with_advice",
    "status.two_notes",
}
_PLACEHOLDER = re.compile(r"%\((\w+)\)[sdgr]")


def _import_everything() -> None:
    for name in PACKAGES:
        package = importlib.import_module(name)
        for module in pkgutil.walk_packages(package.__path__, f"{name}."):
            if not module.name.endswith("__main__"):
                importlib.import_module(module.name)


_import_everything()
CODES = sorted(CATALOGUE)


def _danish() -> dict[str, tuple[str, ...]]:
    """Return msgid -> Danish forms from every package's da catalogue (fuzzy ones left out)."""
    found: dict[str, tuple[str, ...]] = {}
    for package in PACKAGES:
        po = i18n.po_file(package, "da")
        if po is None:
            continue
        with po.open("rb") as f:
            for entry in read_po(f, locale="da"):
                msgid = entry.id[0] if isinstance(entry.id, tuple) else entry.id
                if not msgid or entry.fuzzy:
                    continue
                forms = entry.string if isinstance(entry.string, tuple) else (entry.string,)
                found.setdefault(msgid, tuple(forms))
    return found


DANISH = _danish()


def problems_of(code: str, words: Text, danish: dict[str, tuple[str, ...]]) -> list[str]:
    """Return what is wrong with one code's words in the two catalogues (empty: fine)."""
    english = {_names(words.singular)} | ({_names(words.plural)} if words.plural else set())
    problems = [] if len(english) == 1 else ["singular and plural have other placeholders"]
    if words.count and words.count not in _names(words.plural):
        problems.append(f"the count {words.count!r} is not a placeholder of the plural")
    forms = danish.get(words.singular)
    if forms is None or not all(forms):
        return [*problems, "no Danish"]
    if words.plural and len(forms) != 2:
        problems.append("no Danish plural forms")
    if not words.plural and len(forms) != 1:
        problems.append("Danish plural forms for a code without a plural")
    for form in forms:
        if _names(form) != _names(words.plural or words.singular):
            problems.append(f"Danish {form!r} has other placeholders")
    if forms[0] == words.singular and code not in SAME_IN_DANISH:
        problems.append("the Danish is the English")
    return problems


def _names(template: str) -> frozenset[str]:
    return frozenset(_PLACEHOLDER.findall(template))


def test_every_package_defines_codes() -> None:
    owners = {code.split(".")[0] for code in CODES}
    assert {"http", "feed", "entry", "ical", "model", "rrule", "storage", "merge"} <= owners
    assert {"refresh", "parse", "status", "web", "errors"} <= owners


@pytest.mark.parametrize("code", CODES)
def test_code_is_in_both_catalogues(code: str) -> None:
    assert problems_of(code, CATALOGUE[code], DANISH) == []


def test_a_missing_or_untranslated_code_fails(tmp_path: Path) -> None:
    missing = Text("A sentence no catalogue has, about %(thing)s.")
    assert problems_of("test.missing", missing, DANISH) == ["no Danish"]
    said_again = Text("unchanged")  # refresh.unchanged, but "translated" as the English
    assert problems_of("test.same", said_again, {"unchanged": ("unchanged",)}) == [
        "the Danish is the English"
    ]
    plural = Text("%(n)s thing", "%(n)s things", "n")
    assert problems_of("test.plural", plural, {"%(n)s thing": ("%(n)s ting",)}) == [
        "no Danish plural forms"
    ]
    wrong = {"%(n)s thing": ("%(n)s ting", "%(count)s ting")}
    assert problems_of("test.plural", plural, wrong) == [
        "Danish '%(count)s ting' has other placeholders"
    ]


def test_a_temporary_code_is_walked_and_fails() -> None:
    code = define("test.temporary", "A temporary sentence only this test defines.")
    try:
        assert code in CATALOGUE
        assert problems_of(code, CATALOGUE[code], DANISH) == ["no Danish"]
    finally:
        del CATALOGUE[code]


def _message_calls() -> Iterator[tuple[str, int, str, set[str]]]:
    """Yield (file, line, code, parameter names) of each `Message(NAME, {literal keys})`."""
    for package in PACKAGES:
        root = i18n.package_dir(package)
        assert root is not None
        for path in sorted(root.rglob("*.py")):
            module = ".".join(path.relative_to(root.parent).with_suffix("").parts)
            tree = ast.parse(path.read_text(encoding="utf-8"))
            for node in ast.walk(tree):
                found = _literal_call(node)
                if found is not None:
                    code = _resolve(module, found[0])
                    if code is not None:
                        yield str(path), node.lineno, code, found[1]


def _literal_call(node: ast.AST) -> tuple[str, set[str]] | None:
    if not (isinstance(node, ast.Call) and getattr(node.func, "id", "") == "Message"):
        return None
    if len(node.args) < 2 or not isinstance(node.args[0], ast.Name):
        return None
    params = node.args[1]
    if not isinstance(params, ast.Dict) or not all(
        isinstance(k, ast.Constant) and isinstance(k.value, str) for k in params.keys
    ):
        return None
    return node.args[0].id, {k.value for k in params.keys if isinstance(k, ast.Constant)}


def _resolve(module: str, name: str) -> str | None:
    value = getattr(importlib.import_module(module), name, None)
    return value if isinstance(value, str) and value in CATALOGUE else None


CALLS = list(_message_calls())


def test_the_source_builds_messages_with_literal_parameters() -> None:
    assert len(CALLS) > 40  # the walk finds the calls (it failed silently once)


@pytest.mark.parametrize(("path", "line", "code", "params"), CALLS)
def test_parameters_match_the_english_placeholders(
    path: str, line: int, code: str, params: set[str]
) -> None:
    words = CATALOGUE[code]
    assert params == set(_names(words.plural or words.singular)), f"{path}:{line}"


def test_render_chooses_the_plural_and_the_language() -> None:
    one = Message("status.failures", {"n": 1})
    assert one.english() == "1 failure in a row"
    assert Message("status.failures", {"n": 2}).english() == "2 failures in a row"
    assert one.render("da") == "1 fejl i træk"
    held = Message("merge.held_back", {"gone": 1, "total": 1})
    assert "1 of 1 upcoming entry; it is kept" in held.english()


def test_messages_round_trip_through_json_and_old_strings_load() -> None:
    inner = Message("status.seconds", {"n": 5})
    message = Message("status.last_success", {"ago": inner}, cause=text("x"))
    assert Message.from_json(message.to_json()) == message
    old = Message.from_json("could not connect: connection refused")
    assert old.code == LEGACY and old.english() == "could not connect: connection refused"
    assert text("").render("da") == ""  # not the catalogue's header
    assert text("Give a title.").render("da") == "Skriv en titel."


def test_a_decimal_is_written_as_its_language_writes_it() -> None:
    from klynge.http.problems import TIMEOUT

    slow = Message(TIMEOUT, {"seconds": 2.5})
    assert slow.render("en") == "timed out after 2.5 s"
    assert slow.render("da") == "fik ikke svar inden for 2,5 sekunder"
    assert Message(TIMEOUT, {"seconds": 30.0}).render("da") == "fik ikke svar inden for 30 sekunder"


def test_durations_on_status_count_in_danish() -> None:
    from aggregator.web.status import HOURS, SECONDS

    assert Message(HOURS, {"n": 1}).render("da") == "1 time"
    assert Message(HOURS, {"n": 25}).render("da") == "25 timer"
    assert Message(SECONDS, {"n": 1}).render("da") == "1 sekund"
    assert Message(HOURS, {"n": 1}).render("en") == "1 h"
