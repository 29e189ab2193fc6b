"""`make pi-check`'s scripts (deploy/pi/): shellcheck-clean, and its table says what it means.

The check itself (an arm64 root under emulation) is not part of `make test`; `.ci/run` runs it.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PI = ROOT / "deploy" / "pi"


def test_the_pi_scripts_pass_shellcheck() -> None:
    shellcheck = shutil.which("shellcheck")
    if shellcheck is None:
        pytest.fail("shellcheck is missing: tests/setup-system.sh installs it")
    scripts = sorted(str(p) for p in PI.glob("*.sh"))
    assert len(scripts) == 5
    done = subprocess.run([shellcheck, *scripts], capture_output=True, text=True, check=False)
    assert (done.returncode, done.stdout + done.stderr) == (0, "")


def _selection() -> tuple[list[str], list[tuple[str, list[str]]]]:
    """Return the pytest arguments `check.sh --selection` prints, and each group left out."""
    env = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"}  # no PI_TESTS or PI_MARKS from outside
    done = subprocess.run(["bash", str(PI / "check.sh"), "--selection"], env=env,
                          capture_output=True, text=True, check=True)  # fmt: skip
    *left, run = done.stdout.splitlines()
    assert run.startswith("pi-check: the tests, on both sides: pytest "), done.stdout
    groups = []
    for line in left:
        found = re.fullmatch(r"pi-check: left out on both sides: (\S.+) \((--\S.*)\)", line)
        assert found, line
        groups.append((found[1], shlex.split(found[2])))
    return shlex.split(run.split(" pytest ", 1)[1]), groups


def test_pi_check_runs_every_test_without_a_browser_and_says_why_it_leaves_any_out() -> None:
    args, groups = _selection()
    assert args[args.index("-m") + 1] == "not browser"
    assert "tests" in args and not any(a.startswith("tests/") for a in args[: args.index("-m")])
    for reason, group in groups:
        assert len(reason.split()) >= 3, reason  # a reason in words, not a bare name
        for arg in group:
            option, _, target = arg.partition("=")
            assert option in ("--deselect", "--ignore"), arg
            path, _, test = target.partition("::")
            assert (ROOT / path).exists(), f"{arg}: no such file (renamed?)"
            name = test.split("[")[0]
            assert not name or f"def {name}(" in (ROOT / path).read_text(), f"{arg}: no such test"
        assert set(group) <= set(args), group


def _side(machine: str, factor: float) -> dict[str, object]:
    bench = {k: 2.0 * factor for k in ("full_wall", "full_cpu_all", "one_wall", "one_cpu_all")}
    bench |= {"rss": 60.0 * factor, "rss_all": 150.0 * factor, "entries": 750}
    return {"machine": machine, "demo_starts": [8.0 * factor, 5.0 * factor, 7.0 * factor],
            "demo_fill": 1.0 * factor, "feed_check": {"seconds": factor, "summary": "feed: X"},
            "bench": bench}  # fmt: skip


def test_the_table_puts_both_sides_with_the_ratio_and_calls_it_an_upper_bound(
    tmp_path: Path,
) -> None:
    (tmp_path / "host.json").write_text(json.dumps(_side("x86_64", 1.0)))
    (tmp_path / "arm64.json").write_text(json.dumps(_side("aarch64", 6.0)))
    (tmp_path / "host-tests.txt").write_text("281 passed, 3 deselected in 20.00s\n")
    (tmp_path / "arm-tests.txt").write_text("281 passed, 3 deselected in 300.00s\n")
    args = ["--install", "2", "20", "--cold", "30", "600", "--tests", "20", "300",
            "--debootstrap", "537", "--whole", "1200"]  # fmt: skip
    done = subprocess.run([sys.executable, str(PI / "table.py"), str(tmp_path), *args],
                          capture_output=True, text=True, check=True)  # fmt: skip
    lines = done.stdout.splitlines()
    restart = next(ln for ln in lines if ln.startswith("start-up: klynge demo, restart"))
    assert restart.split()[-5:] == ["6.0", "s", "36.0", "s", "6.0x"]  # the median of restarts
    tests = next(ln for ln in lines if ln.startswith("unit tests, no browser"))
    assert tests.split()[-1] == "15.0x"
    assert "unit tests: host 281 passed, 3 deselected in 20.00s; arm64 281 passed" in done.stdout
    assert "The ratio is an UPPER BOUND on a real Pi's slowness" in done.stdout


def test_ci_gives_pi_check_a_list_of_existing_test_files() -> None:
    listed = [
        line.strip()
        for line in (PI / "ci-tests.txt").read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert listed and len(set(listed)) == len(listed)
    missing = [name for name in listed if not (ROOT / name).is_file()]
    assert not missing, f"deploy/pi/ci-tests.txt names files that are gone: {missing}"
    assert all(name.startswith("tests/test_") and name.endswith(".py") for name in listed)
    assert "deploy/pi/ci-tests.txt" in (ROOT / ".ci" / "run").read_text(encoding="utf-8")
