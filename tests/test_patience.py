"""The wait-bound factor the tests share (tests/patience.py): parsed strictly, bounded."""

from __future__ import annotations

import pytest
from patience import PATIENCE_ENV, eventually, patient


def test_bounds_are_unchanged_by_default_and_stretch_with_the_factor(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(PATIENCE_ENV, raising=False)
    assert patient(3.0) == 3.0
    monkeypatch.setenv(PATIENCE_ENV, "10")
    assert patient(3.0) == 30.0


@pytest.mark.parametrize("raw", ["0", "0.5", "101", "ten", "nan", "-1"])
def test_a_bad_factor_is_refused_in_words(monkeypatch: pytest.MonkeyPatch, raw: str) -> None:
    monkeypatch.setenv(PATIENCE_ENV, raw)
    with pytest.raises(ValueError, match="from 1 to 100"):
        patient(1.0)


async def test_eventually_fails_after_its_bound_and_says_so(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(PATIENCE_ENV, "2")

    async def never() -> bool:
        return False

    with pytest.raises(AssertionError, match=r"within 0\.2 s"):
        await eventually(never, limit=0.1)
