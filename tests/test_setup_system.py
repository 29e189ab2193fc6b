"""tests/setup-system.sh, which `make test` runs first: without root it installs nothing and
says in one line what is missing and how to install it.

The script runs as an unprivileged user (nobody, when the tests run as root as in CI) with a
PATH that lacks `faketime` and `sudo`, from a copy in a world-readable temporary folder.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "tests" / "setup-system.sh"
HIDDEN = {"faketime", "sudo"}
NOBODY = 65534


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A temporary folder that an unprivileged user can read (pytest's tmp_path is 0700)."""
    path = Path(tempfile.mkdtemp(prefix="klynge-setup-"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path)


def fake_path(root: Path) -> str:
    """Return a PATH of links to every command on this machine except the HIDDEN ones."""
    bin_dir = root / "bin"
    bin_dir.mkdir()
    for folder in ("/usr/local/bin", "/usr/bin", "/bin", "/usr/sbin", "/sbin"):
        for command in sorted(Path(folder).glob("*")):
            link = bin_dir / command.name
            if command.name not in HIDDEN and not link.is_symlink():
                link.symlink_to(command)
    return str(bin_dir)


def unprivileged(args: list[str]) -> list[str]:
    """Return the command run as nobody when we are root; as it is otherwise."""
    if os.geteuid() != 0:
        return args
    setpriv = shutil.which("setpriv") or "/usr/bin/setpriv"
    return [setpriv, f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", *args]


def test_without_root_it_names_what_is_missing_and_the_command_in_one_line(
    shared_dir: Path,
) -> None:
    (shared_dir / "tests").mkdir()
    script = shared_dir / "tests" / "setup-system.sh"
    shutil.copy2(SCRIPT, script)
    env = {"PATH": fake_path(shared_dir), "HOME": str(shared_dir), "LANG": "C.UTF-8"}
    done = subprocess.run(unprivileged(["/bin/bash", str(script)]), env=env, cwd=shared_dir,
                          capture_output=True, text=True, timeout=60, check=False)  # fmt: skip
    assert done.returncode == 1, done.stdout + done.stderr
    assert done.stdout == ""
    [line] = done.stderr.splitlines()
    found = re.fullmatch(
        r"tests/setup-system\.sh: the tests need (.+) \(missing here\); install as root with: "
        r"apt-get update && apt-get install -y -q --no-install-recommends (.+)",
        line,
    )
    assert found, line
    assert "faketime" in found[1].split() and found[1] == found[2]
    assert not (shared_dir / "node_modules").exists()  # it stopped before npm
