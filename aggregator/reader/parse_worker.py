"""Untrusted work in a child process, bounded in time and memory, killed and replaced on overrun.

Parsing and validating a remote feed is CPU-bound work on hostile input: a rule that sends
dateutil into an endless loop, or a document whose tree fills the memory, must cost that source
one fetch, never the aggregator. So it runs in one child process (a new interpreter,
aggregator.child) under `RLIMIT_AS`, and a job that overruns its wall-clock limit gets the child
killed; the next job starts a fresh one.

One child, one job at a time: parsing is CPU-bound, and a Pi has few cores to share with the
web server. The job's result travels back pickled: 5,000 parsed events are about 0.8 MB and
cost about 0.12 s to pickle and 0.08 s to unpickle (measured once by hand, not yet a bench).
"""

from __future__ import annotations

import asyncio
import contextlib
import resource
import signal
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from multiprocessing.connection import Connection
from typing import Any, TypeVar

from aggregator.child import Child
from klynge.errors import FeedError
from klynge.messages import Message, define

T = TypeVar("T")
MB = 1024 * 1024


TOO_SLOW = define(
    "parse.too_slow", "the feed took too long to read (more than %(seconds)s s), so it was ignored"
)
TOO_BIG = define(
    "parse.too_big",
    "the feed needed too much memory to read (more than %(mb)s MB), so it was ignored",
)
CRASHED = define("parse.crashed", "the feed reader stopped unexpectedly, so the feed was ignored")
STOPPING = define("parse.stopping", "the aggregator is stopping")


class ParseOverrun(Exception):
    """A job ran over its time or memory limit; `detail` says which (`message` in English)."""

    def __init__(self, detail: Message) -> None:
        super().__init__(detail.english())
        self.detail = detail
        self.message = detail.english()


def too_slow(seconds: float) -> ParseOverrun:
    """Return the overrun for a job that took longer than `seconds`."""
    return ParseOverrun(Message(TOO_SLOW, {"seconds": f"{seconds:g}"}))


def too_big(megabytes: int) -> ParseOverrun:
    """Return the overrun for a job that needed more than `megabytes` of memory."""
    return ParseOverrun(Message(TOO_BIG, {"mb": megabytes}))


class JobFailed(Exception):
    """A job raised an unexpected error in the child; `message` names it."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ParseWorker:
    """Runs picklable jobs in one child process, one at a time, with a time and memory bound."""

    def __init__(self, *, timeout: float, memory_mb: int) -> None:
        self.timeout = timeout
        self.memory_mb = memory_mb
        self._child = Child(serve_jobs, (memory_mb,))
        self._lock = asyncio.Lock()
        # The connection and the child belong to this thread: blocking I/O never runs on the loop.
        self._io = ThreadPoolExecutor(1, thread_name_prefix="klynge-parse-io")
        self._closed = False

    @property
    def started(self) -> int:
        """Return how many children were started so far (a restart after an overrun counts)."""
        return self._child.started

    async def start(self) -> None:
        """Start the child now (else the first job does): its imports run while the store loads."""
        async with self._lock:
            await asyncio.get_running_loop().run_in_executor(self._io, self._child.connection)

    async def run(self, job: Callable[..., T], *args: Any) -> T:
        """Run `job(*args)` in the child; raise ParseOverrun, or what the job raised."""
        async with self._lock:
            if self._closed:
                raise ParseOverrun(Message(STOPPING))
            loop = asyncio.get_running_loop()
            reply = loop.run_in_executor(self._io, self._call, job, args)
            try:
                status, value = await asyncio.wait_for(asyncio.shield(reply), self.timeout)
            except TimeoutError:
                self._child.kill()  # the I/O thread then sees the connection close and cleans up
                await asyncio.gather(reply, return_exceptions=True)
                raise too_slow(self.timeout) from None
            except BaseException:  # cancelled (shutdown): the child's work is of no use now
                self._child.kill()
                raise
        return _unpack(status, value, self.memory_mb)  # type: ignore[no-any-return]

    def _call(self, job: Callable[..., Any], args: tuple[Any, ...]) -> tuple[str, Any]:
        try:
            conn = self._child.connection()
            conn.send((job, args))
            reply: tuple[str, Any] = conn.recv()
        except (EOFError, OSError):
            reply = ("died", None)
        if reply[0] != "ok" and reply[0] != "feed":
            self._child.reap()  # a child that ran out of memory or died may be in any state
        return reply

    async def close(self) -> None:
        """Kill the child, whatever it is doing, and stop the I/O thread (without waiting)."""
        self._closed = True
        self._child.kill()
        with contextlib.suppress(RuntimeError):
            self._io.submit(self._child.reap)  # after a running job, which the kill ends at once
        self._io.shutdown(wait=False)


def _unpack(status: str, value: Any, memory_mb: int) -> Any:
    if status == "ok":
        return value
    if status == "memory":
        raise too_big(memory_mb)
    if status == "feed":
        raise FeedError(value if isinstance(value, Message) else str(value))
    if status == "error":
        raise JobFailed(str(value))
    raise ParseOverrun(Message(CRASHED))


def serve_jobs(conn: Connection, memory_mb: int) -> None:
    """Answer jobs from `conn` until it closes (the child process's main function)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C stops the parent, which kills us
    limit = memory_mb * MB
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    while True:
        try:
            job, args = conn.recv()
        except (EOFError, OSError):
            return
        reply = _answer(job, args)
        conn.send(reply)
        if reply[0] == "memory":
            return


def _answer(job: Callable[..., Any], args: tuple[Any, ...]) -> tuple[str, Any]:
    # Errors travel as messages or words: an exception object may not survive pickling.
    try:
        return ("ok", job(*args))
    except MemoryError:
        return ("memory", None)
    except FeedError as e:
        return ("feed", e.detail)
    except Exception as e:
        return ("error", f"{type(e).__name__}: {e}")
