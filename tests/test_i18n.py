"""Message catalogues and language choice: every msgid in use has Danish, negotiation is right."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from clock_support import utc_now

from klynge import i18n
from klynge.errors import ValidationError
from klynge.model import Event


@pytest.mark.parametrize("package", i18n.existing_packages())
def test_every_msgid_has_danish(package: str) -> None:
    missing = i18n.missing_msgids(package)
    assert not missing, f"{package}: add Danish for these msgids: {missing}"


def test_the_check_finds_klynge_templates_and_model_messages() -> None:
    found = i18n.package_msgids("klynge")
    assert "Skip to content" in found  # base.html
    assert "Please correct the following" in found  # macros.html
    assert "Give a title." in found  # model.py
    assert "The end is before the start." in found
    assert "The page was not found." in found  # web.py, marked with N_


def test_check_reports_a_missing_msgid(tmp_path: Path) -> None:
    template = tmp_path / "t.html"
    template.write_text('{{ _("A msgid nobody translated") }}{% trans %}Hello{% endtrans %}')
    assert set(i18n.template_msgids(template)) == {"A msgid nobody translated", "Hello"}
    code = tmp_path / "views.py"
    code.write_text(
        'x = translate(lang, "Saved.")\ny = gettext(request, "Deleted.")\nz = _("Hi")\n'
    )
    assert set(i18n.python_msgids(code)) == {"Saved.", "Deleted.", "Hi"}


def test_check_command_runs() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "klynge.i18n", "check", "klynge"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "all msgids translated" in done.stdout


def test_translate_fills_params_and_falls_back_to_the_msgid() -> None:
    assert i18n.translate("da", "Give a title.") == "Skriv en titel."
    assert i18n.translate("en", "Give a title.") == "Give a title."
    assert i18n.translate("da", "Error code %(status)s.", status=404) == "Fejlkode 404."
    assert i18n.translate("da", "Not in any catalogue 100%") == "Not in any catalogue 100%"
    assert i18n.translate("xx", "Give a title.") == "Skriv en titel."


def test_model_validation_messages_translate() -> None:
    with pytest.raises(ValidationError) as caught:
        Event(id="urn:x", title="", updated=utc_now(), start=utc_now(), timezone="Nowhere/X")
    danish = i18n.translate_fields("da", caught.value.fields)
    assert danish == {
        "title": "Skriv en titel.",
        "timezone": "Ukendt tidszone; brug et IANA-navn som Europe/Copenhagen.",
    }


@pytest.mark.parametrize(
    ("query", "cookie", "accept", "expected"),
    [
        (None, None, "", "da"),
        ("en", None, "da", "en"),
        ("EN", "da", "", "en"),
        ("fr", "en", "", "en"),
        (None, "en", "da", "en"),
        (None, "zz", "en-GB,en;q=0.9", "en"),
        (None, None, "en;q=0.3, da;q=0.7", "da"),
        (None, None, "de-DE, en-US;q=0.5", "en"),
        (None, None, "fr, de", "da"),
        (None, None, "*", "da"),
        (None, None, "en;q=0, da;q=0.1", "da"),
        (None, None, "garbage;;;q=x", "da"),
    ],
)
def test_choose_lang(query: str | None, cookie: str | None, accept: str, expected: str) -> None:
    assert i18n.choose_lang(query, cookie, accept) == expected


def test_accept_language_order() -> None:
    assert i18n.parse_accept_language("da;q=0.5, en-GB, en;q=0.8") == ["en-GB", "en", "da"]
