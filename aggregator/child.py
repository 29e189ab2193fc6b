"""One worker child process: a new interpreter started on demand, killed at once, reaped.

The parse worker (aggregator.reader.parse_worker) runs one such child and talks to it over a
socket pair; what a job is, and what a reply means, is the worker's. The child is a fresh
`python -m aggregator.child` (never a fork of the serving process, which runs threads): it
imports its target, takes the target's arguments as the first message and runs it. A start
costs the child about 0.15 s of its own CPU (imports), once, and again only after a kill.

It was a multiprocessing forkserver's child before: the forkserver (53 MB) and multiprocessing's
resource tracker (13 MB) stayed beside it for the life of the service, 65 of the 567 MB RSS of a
50,000-entry tier (bench/scale_bench.py).
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any

STOP_WAIT = 1.0  # seconds a killed child gets to be reaped
PR_SET_PDEATHSIG = 1  # linux/prctl.h


class Child:
    """A child process running `target(conn, *args)`, replaced when it is gone.

    Linux kills the child when the thread that started it ends (`_dies_with`): call
    `connection` from a thread that lives as long as the child, as the parse worker's one I/O
    thread does.
    """

    def __init__(self, target: Callable[..., None], args: tuple[Any, ...]) -> None:
        self._target = f"{target.__module__}:{target.__qualname__}"  # imported by the child
        self._args = args
        self._process: subprocess.Popen[bytes] | None = None
        self._conn: Connection | None = None
        self.started = 0  # children started so far (a restart after a death counts)

    @property
    def pid(self) -> int | None:
        """Return the child's process id, if one runs."""
        return self._process.pid if self._process is not None else None

    def connection(self) -> Connection:
        """Return the connection to a live child, starting a new child if there is none."""
        if self._process is not None and self._process.poll() is None and self._conn is not None:
            return self._conn
        self.reap()
        parent, child = socket.socketpair()
        with child:
            # The parent's import path, as multiprocessing gives its children.
            env = os.environ | {"PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
            command = [sys.executable, "-m", "aggregator.child", str(child.fileno()), self._target,
                       str(os.getpid())]  # fmt: skip
            # A session of its own: a Ctrl-C at the terminal stops the parent, which kills it.
            process = subprocess.Popen(
                command,
                pass_fds=[child.fileno()],
                stdin=subprocess.DEVNULL,
                env=env,
                start_new_session=True,
            )
        conn = Connection(parent.detach())
        self._process, self._conn = process, conn
        self.started += 1
        conn.send(self._args)
        return conn

    def kill(self) -> None:
        """Send SIGKILL: a child in an endless C loop ignores anything gentler."""
        process = self._process
        if process is not None:
            with contextlib.suppress(OSError):
                process.kill()

    def reap(self) -> None:
        """Kill the child if it runs, wait for it briefly, and close the connection."""
        process, conn = self._process, self._conn
        self._process = self._conn = None
        if process is not None:
            with contextlib.suppress(OSError, subprocess.TimeoutExpired):
                process.kill()
                process.wait(STOP_WAIT)
        if conn is not None:
            conn.close()


def main(fd: str, target: str, parent: str) -> None:
    """Run `target` ("module:function") on the connection `fd` with the arguments sent first."""
    if not _dies_with(int(parent)):
        return  # the parent is gone already
    module, _, name = target.partition(":")
    function = getattr(importlib.import_module(module), name)
    conn = Connection(int(fd))
    try:
        args = conn.recv()
    except (EOFError, OSError):
        return  # the parent went away before the first job
    function(conn, *args)


def _dies_with(parent: int) -> bool:
    """Have Linux kill this child when the thread that started it ends; tell if it still runs.

    A parent killed outright (SIGKILL, the OOM killer) cannot kill its child, and a child in
    the middle of a hostile parse would run on alone: PR_SET_PDEATHSIG kills it then. Where
    there is no prctl (not Linux), the parent's own kill and reap are what there is.
    """
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None).prctl(PR_SET_PDEATHSIG, ctypes.c_ulong(signal.SIGKILL))
    return os.getppid() == parent  # else the parent died before prctl took effect


if __name__ == "__main__":
    main(*sys.argv[1:4])
