"""Admin commands to a running service: one JSON request a connection on `DIR/control.sock`.

A service holds its data directory's lock (klynge.storage.DataDirLock) for as long as it
runs, so an admin command cannot open the store beside it. Instead the service listens on a
Unix socket in the data directory, mode 0600 (only the directory's owner may talk to it), and
the command sends its one request there: `{"command": NAME, "params": {...}}` and a newline;
the answer is `{"ok": true, "result": {...}}` or `{"ok": false, "error": {...}}` with the error
as a Message (code and parameters). When no service answers, the command opens the store
itself, as before (`call` returns None).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
from collections.abc import Awaitable, Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from klynge.errors import KlyngeError
from klynge.messages import CATALOGUE, Message, define, text

SOCKET_NAME = "control.sock"
MAX_REQUEST = 64 * 1024  # a request or an answer: a few names and a password hash
READ_TIMEOUT = 10.0  # seconds a client may take to send its one request
CALL_TIMEOUT = 60.0  # seconds a command waits for the service (a source's first fetch)
# sun_path holds 108 bytes; a longer path is reached through /proc/self/fd (Linux).
MAX_SOCKET_PATH = 100
log = logging.getLogger("klynge.control")

BAD_REQUEST = define("control.bad_request", "The control request is not valid JSON: %(detail)s")
TOO_LARGE = define("control.too_large", "The control request is larger than %(limit)s bytes.")
UNKNOWN = define("control.unknown", "The service knows no command %(command)s.")
FAILED = define("control.failed", "The service could not run %(command)s: %(detail)s")
NO_ANSWER = define(
    "control.no_answer", "The service at %(path)s did not answer in %(seconds)s seconds."
)
BAD_ANSWER = define("control.bad_answer", "The service at %(path)s answered something unreadable.")

Params = Mapping[str, Any]
Result = dict[str, Any]
Handler = Callable[[Params], Awaitable[Result]]


class ControlError(KlyngeError):
    """A command the running service refused or could not run; its message comes from there."""

    code = "control"


def socket_path(data_dir: Path) -> Path:
    """Return the path of a data directory's control socket."""
    return data_dir / SOCKET_NAME


@contextlib.contextmanager
def _reachable(path: Path) -> Iterator[str]:
    """Yield a name for `path` short enough for a socket address."""
    if len(os.fsencode(path)) <= MAX_SOCKET_PATH:
        yield str(path)
        return
    fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        yield f"/proc/self/fd/{fd}/{path.name}"
    finally:
        os.close(fd)


class ControlServer:
    """Answers admin commands on a data directory's socket while the service runs."""

    def __init__(self, data_dir: Path, handlers: Mapping[str, Handler]) -> None:
        self.path = socket_path(data_dir)
        self.handlers = dict(handlers)
        self._server: asyncio.AbstractServer | None = None

    async def start(self) -> None:
        """Listen on the socket (replacing one left by a stopped service), mode 0600."""
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()  # the caller holds the directory's lock: no one else serves it
        old = os.umask(0o177)  # the socket is created 0600, never briefly wider
        try:
            with _reachable(self.path) as name:
                self._server = await asyncio.start_unix_server(
                    self._serve, path=name, limit=MAX_REQUEST
                )
        finally:
            os.umask(old)
        os.chmod(self.path, 0o600)

    async def close(self) -> None:
        """Stop listening and remove the socket."""
        if self._server is None:
            return
        self._server.close()
        await self._server.wait_closed()
        self._server = None
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            answer = await self._answer(reader)
            writer.write(json.dumps(answer, ensure_ascii=False).encode() + b"\n")
            await writer.drain()
        except (ConnectionError, TimeoutError):
            pass  # the client went away; nothing was half-done on its behalf
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    async def _answer(self, reader: asyncio.StreamReader) -> Result:
        try:
            line = await asyncio.wait_for(reader.readline(), READ_TIMEOUT)
        except ValueError:  # the line outgrew the reader's limit
            return _error("too_large", Message(TOO_LARGE, {"limit": MAX_REQUEST}))
        try:
            request = json.loads(line)
        except (UnicodeDecodeError, ValueError) as e:
            return _error("bad_request", Message(BAD_REQUEST, {"detail": str(e)}))
        if not isinstance(request, dict) or not isinstance(request.get("params", {}), dict):
            return _error("bad_request", Message(BAD_REQUEST, {"detail": "not an object"}))
        command = str(request.get("command", ""))
        handler = self.handlers.get(command)
        if handler is None:
            return _error("unknown", Message(UNKNOWN, {"command": command}))
        return await self._run(command, handler, request.get("params", {}))

    async def _run(self, command: str, handler: Handler, params: Params) -> Result:
        try:
            return {"ok": True, "result": await handler(params)}
        except KlyngeError as e:
            return _error(e.code, e.detail, e.fields)
        except Exception as e:  # a bug must not end the service: the command is told
            log.exception("control command %s failed", command)
            detail = f"{type(e).__name__}: {e}"
            return _error("internal", Message(FAILED, {"command": command, "detail": detail}))


def _error(code: str, detail: Message, fields: Mapping[str, Message] | None = None) -> Result:
    body = {"code": code, "detail": detail.to_json()}
    if fields:
        body["fields"] = {k: v.to_json() for k, v in fields.items()}
    return {"ok": False, "error": body}


def call(
    data_dir: Path, command: str, params: Params | None = None, timeout: float = CALL_TIMEOUT
) -> Result | None:
    """Send one command to the service running on `data_dir`; None when no service listens."""

    def run() -> Result | None:
        return asyncio.run(request(data_dir, command, params or {}, timeout))

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return run()
    # Called from code on an event loop (a test driving the CLI in-process): asyncio.run
    # needs a thread of its own.
    with ThreadPoolExecutor(1, thread_name_prefix="klynge-control") as pool:
        return pool.submit(run).result()


async def request(data_dir: Path, command: str, params: Params, timeout: float) -> Result | None:
    """Send one command and return its result, None when no service listens on the socket."""
    path = socket_path(data_dir)
    if not path.exists():
        return None
    try:
        with _reachable(path) as name:
            reader, writer = await asyncio.open_unix_connection(name, limit=MAX_REQUEST)
    except (ConnectionRefusedError, FileNotFoundError):
        return None  # a socket left by a service that was killed
    try:
        body = json.dumps({"command": command, "params": dict(params)}, ensure_ascii=False)
        writer.write(body.encode() + b"\n")
        await writer.drain()
        line = await asyncio.wait_for(reader.readline(), timeout)
    except TimeoutError as e:
        raise ControlError(Message(NO_ANSWER, {"path": str(path), "seconds": timeout})) from e
    except ValueError as e:
        raise ControlError(Message(BAD_ANSWER, {"path": str(path)})) from e
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()
    return _result(path, line)


def _result(path: Path, line: bytes) -> Result:
    try:
        answer = json.loads(line)
    except ValueError:
        answer = None
    if not isinstance(answer, dict):
        raise ControlError(Message(BAD_ANSWER, {"path": str(path)}))
    if answer.get("ok") is True and isinstance(answer.get("result"), dict):
        result: Result = answer["result"]
        return result
    error = answer.get("error")
    if not isinstance(error, dict):
        raise ControlError(Message(BAD_ANSWER, {"path": str(path)}))
    fields = error.get("fields") if isinstance(error.get("fields"), dict) else {}
    raise ControlError(
        _known(error.get("detail")), fields={k: _known(v) for k, v in (fields or {}).items()}
    )


def _known(value: object) -> Message:
    """Read a message from the service; a code this process does not know keeps its English."""
    message = Message.from_json(value)
    if message.code in CATALOGUE:
        return message
    english = value.get("message") if isinstance(value, dict) else None
    return text(str(english or message.code))
