"""The demo's start-up wait (klynge/demo_wait.py) against real child processes.

No fixed start limit: a slow start that keeps using CPU is waited for, however long; a child
that exits, one that finds its port in use, and one frozen alive are reported in words.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from clock_support import service_env

from klynge.demo_init import klynge
from klynge.demo_wait import Started, wait_healthy
from klynge.errors import KlyngeError

# A service that burns CPU for SECONDS (a slow Pi), then serves /healthz and says so.
SLOW_SERVICE = textwrap.dedent(
    """
    import http.server, sys, time
    end = time.process_time() + float(sys.argv[2])
    while time.process_time() < end:
        pass
    class Health(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200 if self.path == "/healthz" else 404)
            self.end_headers()
            self.wfile.write(b"ok")
        def log_message(self, *args):
            pass
    server = http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), Health)
    print(f"Serving on http://127.0.0.1:{sys.argv[1]}/ (Ctrl-C to stop)", flush=True)
    server.serve_forever()
    """
)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def _child(tmp_path: Path, name: str, port: int, args: list[str]) -> Iterator[Started]:
    log = tmp_path / f"{name}.log"
    with log.open("ab") as out:
        proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, env=service_env())  # fmt: skip
    try:
        yield Started(name, f"http://127.0.0.1:{port}", proc, log)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()


def test_a_slow_start_that_uses_cpu_is_waited_for_past_the_stall_limit(tmp_path: Path) -> None:
    port = _free_port()
    notes: list[str] = []
    args = [sys.executable, "-c", SLOW_SERVICE, str(port), "3"]
    with _child(tmp_path, "osterby", port, args) as svc:
        took = wait_healthy([svc], stall=1.0, note=0.5, say=notes.append)
    assert took > 2.0  # longer than the stall limit: progress, not a clock, decides
    assert notes, "no note said what the demo was waiting for"
    assert all(n.startswith("still starting (") for n in notes), notes
    assert "waiting for osterby (starting, " in notes[0] and " s CPU so far)" in notes[0]


def test_a_child_that_exits_is_named_with_its_last_line_and_log(tmp_path: Path) -> None:
    port = _free_port()
    code = "import sys; print('klynge: error: the settings are damaged'); sys.exit(1)"
    args = [sys.executable, "-c", code]
    with _child(tmp_path, "vesterlund", port, args) as svc, pytest.raises(KlyngeError) as caught:
        wait_healthy([svc], stall=60.0)
    log = tmp_path / "vesterlund.log"
    assert caught.value.message == (
        f"vesterlund stopped at start: the settings are damaged (log: {log})"
    )


def test_a_port_taken_after_the_check_stops_the_real_service_in_clear_words(
    tmp_path: Path,
) -> None:
    data = tmp_path / "aggregator"
    klynge("aggregator", "init", str(data), "--name", "Klynge Test", "--url", "http://a.example")
    with socket.socket() as holder:  # another program got the port first
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = int(holder.getsockname()[1])
        args = [sys.executable, "-m", "klynge.cli", "aggregator", "serve", str(data),
                "--host", "127.0.0.1", "--port", str(port)]  # fmt: skip
        with _child(tmp_path, "aggregator", port, args) as svc, pytest.raises(KlyngeError) as e:
            wait_healthy([svc], stall=120.0)
        caught = e
    assert caught.value.message == (
        f"aggregator stopped at start: port {port} on 127.0.0.1 is already in use by another "
        f"program; stop it or choose another port with --port (log: {tmp_path / 'aggregator.log'})"
    )


def test_a_child_alive_but_frozen_is_reported_after_the_stall_limit(tmp_path: Path) -> None:
    port = _free_port()
    code = "import time; time.sleep(60)"  # alive, no CPU, no log, no port
    args = [sys.executable, "-c", code]
    with _child(tmp_path, "norrevang", port, args) as svc, pytest.raises(KlyngeError) as caught:
        wait_healthy([svc], stall=2.0)
    assert caught.value.message == (
        "norrevang has made no progress for 2 s (alive, but it used no CPU time, wrote nothing "
        f"to its log and opened no port); see its log: {tmp_path / 'norrevang.log'}"
    )


def test_a_failing_seed_command_is_reported_in_words(tmp_path: Path) -> None:
    with pytest.raises(KlyngeError) as caught:
        klynge("node", "init", str(tmp_path / "x"), "--name", "X", "--url", "not-a-url")
    assert caught.value.message == (
        "`klynge node init " + str(tmp_path / "x") + "` failed: --url 'not-a-url' must be an "
        "http(s) URL, e.g. https://osterby.example.dk"
    )
