"""`klynge node …`: init, user and token commands, help texts, errors, config overrides."""

from __future__ import annotations

import socket
import subprocess
import tomllib
from pathlib import Path

import pytest
from node_support import KLYNGE, PASSWORD, PUBLIC_URL, cli, make_node, ok

from klynge.errors import ConfigError
from node.auth import token_hash
from node.config import load_config
from node.store import Store

COMMANDS = [
    [],
    ["init"],
    ["serve"],
    ["user"],
    ["user", "add"],
    ["user", "passwd"],
    ["user", "remove"],
    ["token"],
    ["token", "add"],
    ["token", "revoke"],
    ["backup"],
]


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "node")
def test_every_help_ends_with_an_example(command: list[str]) -> None:
    done = subprocess.run([KLYNGE, "node", *command, "--help"], capture_output=True, text=True,
                          timeout=60)  # fmt: skip
    assert done.returncode == 0
    last = done.stdout.strip().splitlines()
    assert last[-2].strip() == "example:" and "klynge node" in last[-1]


def test_init_writes_a_valid_config(tmp_path: Path) -> None:
    path = tmp_path / "n"
    out = ok(["init", str(path), "--name", "Østerby", "--url", PUBLIC_URL + "/",
              "--aggregator", "https://klynge.example.dk"])  # fmt: skip
    assert "node.toml" in out
    raw = tomllib.loads((path / "node.toml").read_text())
    assert raw["url"] == PUBLIC_URL and raw["aggregators"] == ["https://klynge.example.dk"]
    config = load_config(path, env={})
    assert config.ping_urls == ("https://klynge.example.dk/ping",)
    assert config.feed_id.startswith("urn:uuid:") and len(config.secret_key) >= 32
    code, _, err = cli(["init", str(path), "--name", "X", "--url", PUBLIC_URL])
    assert code == 1 and "already exists" in err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--name", "X", "--url", "ftp://x"], "http(s)"),
        (["--name", "X", "--url", PUBLIC_URL, "--aggregator", "javascript:x"], "--aggregator"),
        (["--name", " ", "--url", PUBLIC_URL], "--name"),
        (["--name", "X", "--url", PUBLIC_URL, "--timezone", "Mars/Base"], "time zone"),
    ],
)
def test_init_refuses_bad_settings(tmp_path: Path, args: list[str], message: str) -> None:
    code, _, err = cli(["init", str(tmp_path / "n"), *args])
    assert code == 1 and message in err and err.count("\n") == 1
    assert not (tmp_path / "n" / "node.toml").exists()


def test_environment_overrides_win(tmp_path: Path) -> None:
    node_dir = make_node(tmp_path)
    env = {
        "KLYNGE_NAME": "Vesterby",
        "KLYNGE_PUBLIC_URL": "https://vesterby.example.dk/",
        "KLYNGE_AGGREGATORS": "https://a.example.dk, https://b.example.dk",
        "KLYNGE_TIMEZONE": "Europe/Berlin",
    }
    config = load_config(node_dir.path, env=env)
    assert (config.name, config.public_url, config.timezone) == (
        "Vesterby", "https://vesterby.example.dk", "Europe/Berlin"
    )  # fmt: skip
    assert config.aggregators == ("https://a.example.dk", "https://b.example.dk")
    with pytest.raises(ConfigError, match="secret_key"):
        load_config(node_dir.path, env={"KLYNGE_SECRET_KEY": "short"})
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "missing", env={})


def test_users_and_tokens(tmp_path: Path) -> None:
    node_dir = make_node(tmp_path)
    store = Store.open(node_dir.path / "node.json")
    bo = store.user("bo")
    assert bo is not None and bo.association == "Østerby IF" and not bo.admin
    assert bo.password_hash.startswith("$argon2id$") and PASSWORD not in bo.password_hash
    [record] = [t for t in store.tokens() if t.username == "bo"]
    assert record.hash == token_hash(node_dir.token) and node_dir.token not in str(store.tokens())
    store.close()
    code, _, err = cli(["user", "add", str(node_dir.path), "bo", "--association", "X",
                        "--password-stdin"], stdin=PASSWORD + "\n")  # fmt: skip
    assert code == 1 and "already exists" in err
    code, _, err = cli(["user", "add", str(node_dir.path), "eve", "--association", "X",
                        "--password-stdin"], stdin="short\n")  # fmt: skip
    assert code == 1 and "10 characters" in err
    code, _, err = cli(["token", "add", str(node_dir.path), "nobody"])
    assert code == 1 and "no user" in err
    # Revoke by a prefix of the token itself (it contains the id).
    assert "revoked" in ok(["token", "revoke", str(node_dir.path), node_dir.token[:12]])
    code, _, err = cli(["token", "revoke", str(node_dir.path), "ffffffff"])
    assert code == 1 and "no token" in err


def test_user_add_prompts_twice(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    node_dir = make_node(tmp_path)
    answers = iter(["first password!", "other password!"])
    monkeypatch.setattr("getpass.getpass", lambda prompt="": next(answers))
    code, _, err = cli(["user", "add", str(node_dir.path), "eve", "--association", "Skolen"])
    assert code == 1 and "differ" in err
    answers = iter(["same password!!", "same password!!"])
    assert "added user eve" in ok(["user", "add", str(node_dir.path), "eve",
                                   "--association", "Skolen"])  # fmt: skip


def test_errors_are_one_line_without_traceback(tmp_path: Path) -> None:
    done = subprocess.run([KLYNGE, "node", "serve", str(tmp_path / "nothing")],
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert done.returncode == 1
    assert done.stderr.count("\n") == 1 and "klynge node init" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize("port", ["99999", "-1", "abc"])
def test_serve_refuses_a_port_out_of_range_in_one_line(tmp_path: Path, port: str) -> None:
    node_dir = make_node(tmp_path)
    done = subprocess.run([KLYNGE, "node", "serve", str(node_dir.path), "--port", port],
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert last.endswith("argument --port: must be a number from 0 to 65535")


def test_serve_on_a_port_in_use_says_so_in_one_line(tmp_path: Path) -> None:
    node_dir = make_node(tmp_path)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run([KLYNGE, "node", "serve", str(node_dir.path), "--port", str(port)],
                              capture_output=True, text=True, timeout=60)  # fmt: skip
    assert done.returncode == 1
    last = done.stderr.strip().splitlines()[-1]
    assert last == (
        f"klynge: error: port {port} on 127.0.0.1 is already in use by another program; "
        "stop it or choose another port with --port"
    )
