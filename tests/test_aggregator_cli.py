"""`klynge aggregator …` and its configuration, run in-process against real files and servers."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import urllib.request
from datetime import timedelta
from pathlib import Path
from typing import Any

import aggregator_support as support
import pytest
from aggregator_support import FeedServer, event, feed
from patience import patient
from serve_support import serving

from aggregator import cli
from aggregator.config import load_config
from aggregator.store.sources import Store
from klynge.errors import ConfigError
from klynge.storage import DataDirLock

feed_server = support.feed_server  # a fixture


def run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = cli.main(args)
    out, err = capsys.readouterr()
    return code, out, err


def init(tmp_path: Path, capsys: Any) -> Path:
    data = tmp_path / "agg"
    assert (
        run(["init", str(data), "--name", "Klynge Syd", "--url", "https://syd.example"], capsys)[0]
        == 0
    )
    return data


def test_init_and_source_add_write_a_valid_config(tmp_path: Path, capsys: Any) -> None:
    data = init(tmp_path, capsys)
    code, out, _ = run(
        ["source", "add", str(data), "https://a.example/feed.atom", "--name", "Østerby"], capsys
    )
    assert code == 0 and "Added" in out
    run(
        ["source", "add", str(data), "https://syd2.example/feed.atom", "--kind", "aggregator"],
        capsys,
    )
    config = load_config(data, env={})
    assert config.name == "Klynge Syd" and config.poll_interval == timedelta(minutes=15)
    assert [(s.name, s.kind) for s in config.sources] == [("Østerby", "node"), ("", "aggregator")]
    code, out, _ = run(["source", "list", str(data)], capsys)
    assert "Østerby" in out and "aggregator" in out


def test_errors_are_one_line(tmp_path: Path, capsys: Any) -> None:
    data = init(tmp_path, capsys)
    code, _, err = run(["init", str(data), "--name", "X", "--url", "https://x.example"], capsys)
    assert code == 1 and err.count("\n") == 1 and "already exists" in err
    code, _, err = run(["source", "add", str(data), "ftp://a.example/feed"], capsys)
    assert code == 1 and "http://" in err and err.count("\n") == 1
    code, _, err = run(["source", "list", str(tmp_path / "nowhere")], capsys)
    assert code == 1 and "aggregator init" in err


def test_every_command_has_help_with_an_example(capsys: Any) -> None:
    for args in (
        ["init"],
        ["source", "add"],
        ["source", "list"],
        ["serve"],
        ["refresh"],
        ["backup"],
    ):
        with pytest.raises(SystemExit) as done:
            cli.main([*args, "--help"])
        assert done.value.code == 0
        assert "example:\n  klynge aggregator" in capsys.readouterr().out


def test_environment_overrides_and_validation(tmp_path: Path, capsys: Any) -> None:
    data = init(tmp_path, capsys)
    config = load_config(data, env={"KLYNGE_NAME": "Klynge Nord", "KLYNGE_POLL_MINUTES": "5"})
    assert config.name == "Klynge Nord" and config.poll_interval == timedelta(minutes=5)
    with pytest.raises(ConfigError, match="KLYNGE_POLL_MINUTES"):
        load_config(data, env={"KLYNGE_POLL_MINUTES": "ofte"})
    (data / "aggregator.toml").write_text(
        'name = "X"\nurl = "https://x.example"\n'
        '[[sources]]\nurl = "https://a.example/f"\nkind = "rss"\n'
    )
    with pytest.raises(ConfigError, match="kind 'rss'"):
        load_config(data, env={})


async def test_refresh_polls_once_and_prints_a_line_per_source(
    tmp_path: Path, capsys: Any, feed_server: FeedServer
) -> None:
    good = feed_server.set("/a.atom", feed("Østerby", [event("Loppemarked")]))
    data = init(tmp_path, capsys)
    run(["source", "add", str(data), good], capsys)
    run(["source", "add", str(data), feed_server.url("/missing.atom")], capsys)
    # The command runs its own event loop: run it in a thread while this loop serves the feeds.
    code, out, _ = await asyncio.to_thread(run, ["refresh", str(data)], capsys)
    lines = out.strip().splitlines()
    assert code == 0 and len(lines) == 2
    assert lines[0].startswith("ok") and lines[0].endswith(": 1 entry")
    assert lines[1].startswith("FAIL") and "404" in lines[1]
    store = Store(data)
    try:
        titles = [i.title for s in store.load().values() for i in s.content.entries.values()]
    finally:
        store.close()
    assert titles == ["Loppemarked"]


def test_refresh_refuses_a_data_dir_in_use(tmp_path: Path, capsys: Any) -> None:
    data = init(tmp_path, capsys)
    with DataDirLock(data):
        code, _, err = run(["refresh", str(data)], capsys)
    assert code == 1 and "in use by process" in err


def test_backup_copies_config_and_database(tmp_path: Path, capsys: Any) -> None:
    data = init(tmp_path, capsys)
    Store(data).close()
    code, out, _ = run(["backup", str(data), str(tmp_path / "copy")], capsys)
    assert code == 0 and "aggregator.toml" in out
    assert (tmp_path / "copy" / "aggregator.toml").read_text() == (
        data / "aggregator.toml"
    ).read_text()


def test_serve_refuses_a_bad_port_and_a_port_in_use_in_one_line(tmp_path: Path) -> None:
    data = tmp_path / "agg"
    klynge = [sys.executable, "-m", "klynge.cli", "aggregator"]
    subprocess.run([*klynge, "init", str(data), "--name", "Klynge", "--url", "http://a.example"],
                   check=True, capture_output=True)  # fmt: skip
    bad = subprocess.run([*klynge, "serve", str(data), "--port", "99999"],
                         capture_output=True, text=True, timeout=patient(30))  # fmt: skip
    assert bad.returncode != 0 and "65535" in bad.stderr and "Traceback" not in bad.stderr
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        busy = subprocess.run([*klynge, "serve", str(data), "--port", port],
                              capture_output=True, text=True, timeout=patient(30))  # fmt: skip
    assert busy.returncode == 1 and "Traceback" not in busy.stderr
    assert "already in use" in busy.stderr and len(busy.stderr.strip().splitlines()) == 1


def test_serve_on_port_0_prints_the_port_it_got(tmp_path: Path) -> None:
    data = tmp_path / "agg"
    klynge = [sys.executable, "-m", "klynge.cli", "aggregator"]
    subprocess.run([*klynge, "init", str(data), "--name", "Klynge", "--url", "http://a.example"],
                   check=True, capture_output=True)  # fmt: skip
    with serving([*klynge, "serve", str(data)], tmp_path / "serve.log") as served:
        assert served.port > 0
        assert f"Serving on http://127.0.0.1:{served.port}/ (Ctrl-C to stop)" in served.output()
        with urllib.request.urlopen(f"{served.url}/feed.atom", timeout=10) as response:
            assert b"<title>Klynge</title>" in response.read()
