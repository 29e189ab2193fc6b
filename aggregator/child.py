"""One worker child process: started on demand from a forkserver, killed at once, reaped.

The parse worker (aggregator.reader.parse_worker) runs one such child and talks to it over a
pipe; what a job is, and what a reply means, is the worker's. A forkserver never runs threads,
so forking it is safe while the serving process runs many.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from multiprocessing.connection import Connection
from multiprocessing.context import ForkServerContext
from multiprocessing.process import BaseProcess
from typing import Any

STOP_WAIT = 1.0  # seconds a killed child gets to be reaped


class Child:
    """A child process running `target(conn, *args)`, replaced when it is gone."""

    def __init__(
        self,
        context: ForkServerContext,
        target: Callable[..., None],
        args: tuple[Any, ...],
        name: str,
    ) -> None:
        self._context, self._target, self._args, self._name = context, target, args, name
        self._process: BaseProcess | None = None
        self._conn: Connection | None = None
        self.started = 0  # children started so far (a restart after a death counts)

    @property
    def pid(self) -> int | None:
        """Return the child's process id, if one runs."""
        return self._process.pid if self._process is not None else None

    def connection(self) -> Connection:
        """Return the pipe to a live child, starting a new child if there is none."""
        if self._process is not None and self._process.is_alive() and self._conn is not None:
            return self._conn
        self.reap()
        parent, child = self._context.Pipe()
        process = self._context.Process(
            target=self._target, args=(child, *self._args), name=self._name, daemon=True
        )
        process.start()
        child.close()
        self._process, self._conn = process, parent
        self.started += 1
        return parent

    def kill(self) -> None:
        """Send SIGKILL: a child in an endless C loop ignores anything gentler."""
        process = self._process
        if process is not None:
            with contextlib.suppress(ValueError, OSError):
                process.kill()

    def reap(self) -> None:
        """Kill the child if it runs, wait for it briefly, and close the pipe."""
        process, conn = self._process, self._conn
        self._process = self._conn = None
        if process is not None:
            with contextlib.suppress(ValueError, OSError):
                process.kill()
                process.join(STOP_WAIT)
                process.close()
        if conn is not None:
            conn.close()
