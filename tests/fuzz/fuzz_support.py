"""Shared pieces of the fuzz tests: budgets, a hard time guard, hostile values, rrule-ish text.

Budgets: under `make test` (profile "ci") each fuzz test runs the modest number of examples it
names; under `make fuzz` (HYPOTHESIS_PROFILE=fuzz) it runs the profile's large number, which
tests/fuzz/session.py repeats with fresh seeds until the time budget is spent.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
from collections.abc import Iterator
from datetime import timedelta
from types import FrameType

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from patience import patient

PROFILE_ENV = "HYPOTHESIS_PROFILE"
# Per example. Generous: the machine is shared, and hypothesis reports a slow first run that
# is quick on the replay as a flaky failure. The hard guard below catches real hangs. Both
# stretch with the machine's patience (tests/patience.py): x10 under emulation.
DEADLINE = timedelta(seconds=patient(5))
HARD_LIMIT = patient(15.0)  # seconds of wall-clock time for one call, whatever hypothesis says


def fuzzing() -> bool:
    """Tell whether this run is `make fuzz` (the long budget) rather than `make test`."""
    return os.environ.get(PROFILE_ENV) == "fuzz"


def budget(examples: int) -> settings:
    """Return a fuzz test's settings: `examples` under make test, the profile's under make fuzz."""
    return settings(
        max_examples=settings.default.max_examples if fuzzing() else examples,
        deadline=DEADLINE,
        suppress_health_check=[
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
            HealthCheck.function_scoped_fixture,  # one real app serves every example of a test
            HealthCheck.large_base_example,
        ],
    )


class Hung(Exception):
    """A decoder call ran past the hard wall-clock limit."""


@contextlib.contextmanager
def hard_limit(seconds: float = HARD_LIMIT) -> Iterator[None]:
    """Raise Hung in the main thread when the body runs longer than `seconds` of wall clock.

    SIGALRM interrupts pure-Python loops (dateutil's rrule search is one), so a decoder that
    loops fails the example instead of stalling the whole run.
    """

    def expire(signum: int, frame: FrameType | None) -> None:
        raise Hung(f"still running after {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


# --- hostile values ---------------------------------------------------------------------------

HOSTILE_CONSTANTS = [
    "",
    " ",
    "\t\r\n",
    "\r\n\r\n",
    "x" * 20_001,  # past every text cap (the description's is 20,000)
    "ø" * 5_000,
    "\x00",
    "\x01\x02\x1b[31m\x7f",
    "\u0085\u2028\u2029",
    "\ufeff",
    "\ufffe\uffff",
    "\ud800",
    "\udfff",
    "a\ud83dz",
    "😀" * 50,
    "\u202eevil",
    "javascript:alert(1)",
    " JaVaScRiPt:alert(1)",
    "java\tscript:alert(1)",
    "data:text/html,<script>alert(1)</script>",
    "vbscript:msgbox(1)",
    "file:///etc/passwd",
    "http://",
    "https://[::1",
    "http://127.0.0.1:1/x",
    "//evil.example/",
    "<script>alert(1)</script>",
    "<img src=x onerror=alert(1)>",
    '"><svg onload=alert(1)>',
    "&lt;script&gt;alert(1)&lt;/script&gt;",
    "&amp;lt;script&amp;gt;",
    "]]>",
    "<![CDATA[x]]>",
    "&#0;",
    "&#xD800;",
    "&#1114112;",
    "%s%s%n",
    "{0}{1}",
    "%(title)s",
    "0001-01-01",
    "0001-01-01T00:00:00+00:00",
    "0001-01-01T00:00:00-23:59",
    "9999-12-31",
    "9999-12-31T23:59:59+00:00",
    "9999-12-31T23:59:59-23:59",
    "9999-12-31T23:59",
    "2026-02-30",
    "2026-13-01T10:00",
    "2026-12-24T25:00",
    "2026-12-24T10:00:60+01:00",
    "2026-12-24T10:00+99:00",
    "2026-12-24T10:00:00.123456789Z",
    "2026-W52-3",
    "-1",
    "0",
    "1e309",
    "NaN",
    "-0",
    "99999999999999999999999999",
    "true",
    "Europe/Copenhagen",
    "Europe/Atlantis",
    "../../etc/localtime",
    "UTC",
    "Etc/GMT+14",
    "EST5EDT",
    "/usr/share/zoneinfo/UTC",
]


def hostile_text(max_size: int = 60) -> st.SearchStrategy[str]:
    """Return a strategy of strings a hostile or careless publisher might send."""
    return st.one_of(
        st.sampled_from(HOSTILE_CONSTANTS),
        st.text(max_size=max_size),
        st.text(alphabet=st.characters(codec="utf-8"), max_size=max_size),
        st.text(alphabet=st.sampled_from("<>&;\"'#:/\\%\r\n\t\x00\x0b ZT+-=019"), max_size=30),
        rrule_text(),
    )


def form_text(max_size: int = 60) -> st.SearchStrategy[str]:
    """Return hostile strings a browser can send (a form body cannot carry a lone surrogate)."""
    return hostile_text(max_size).map(lambda text: re.sub("[\ud800-\udfff]", "\ufffd", text))


def xml_safe(text: str) -> str:
    """Return text without the characters XML 1.0 cannot carry (so the element stays valid)."""
    return re.sub("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]", "", text)


# --- rrule-ish text: the RRULE parser has its own property tests (tests/test_rrule_fuzz.py) ---

_FREQS = ["DAILY", "WEEKLY", "MONTHLY", "YEARLY", "HOURLY", "SECONDLY", "daily", "SOMETIMES"]
_UNTILS = [
    "20270101", "20270101T000000Z", "20261201T100000", "00010101", "99991231T235959Z",
    "19000101", "2027-01-01", "20270230", "bad",
]  # fmt: skip
_DAYS = ["MO", "TU", "WE", "TH", "FR", "SA", "SU", "1MO", "-1SU", "+2FR", "53MO", "XX"]
# INTERVAL=0 makes dateutil loop forever (known; the RRULE rework validates INTERVAL >= 1):
# the parts below never give it, and `bounded_rrule` drops what a random join produces.
_PARTS = st.one_of(
    st.builds("FREQ={}".format, st.sampled_from(_FREQS)),
    st.builds("COUNT={}".format, st.sampled_from(["1", "2", "10", "500", "501", "-1", "x", ""])),
    st.builds("UNTIL={}".format, st.sampled_from(_UNTILS)),
    st.builds("INTERVAL={}".format, st.sampled_from(["1", "2", "52", "-3", "x"])),
    st.builds("BYDAY={}".format, st.lists(st.sampled_from(_DAYS), max_size=3).map(",".join)),
    st.builds("BYMONTHDAY={}".format, st.sampled_from(["1", "31", "-1", "30", "0", "32"])),
    st.builds("BYMONTH={}".format, st.sampled_from(["2", "12", "13", "0", "1,2"])),
    st.builds("BYSETPOS={}".format, st.sampled_from(["1", "-1", "400", "0"])),
    st.builds("WKST={}".format, st.sampled_from(["MO", "SU", "ZZ"])),
    st.sampled_from(["", ";", "RRULE:", "X-NAME=1", "FREQ", "=WEEKLY"]),
)
_INTERVAL_ZERO = re.compile(r"INTERVAL=[+-]?0*(?:;|$)", re.IGNORECASE)


def bounded_rrule(rule: str) -> str:
    """Return the rule without INTERVAL=0, the known dateutil hang (see the note above)."""
    return _INTERVAL_ZERO.sub("", rule)


def rrule_text() -> st.SearchStrategy[str]:
    """Return a strategy of RRULE values, good and bad, without the known INTERVAL=0 hang."""
    joined = st.lists(_PARTS, min_size=1, max_size=6).map(";".join)
    return joined.map(bounded_rrule)
