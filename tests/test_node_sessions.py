"""Server-side sessions, the trusted proxies and the login limit, through the real node app.

Each test replays an attack that worked while sessions were only signed cookies, while any
private address could name the client in X-Forwarded-For, and while failures were counted
per username alone: a cookie copied before logout, a LAN client choosing its own address,
and a stranger locking a volunteer out by failing with the volunteer's name.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Coroutine
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient
from clock_support import utc_now
from node_support import PASSWORD, NodeDir, auth, cli, make_node, ok
from test_node_pages import csrf, login

from klynge.clock import Clock
from klynge.errors import ConfigError
from klynge.storage import DataDirLock
from node.app import create_app
from node.auth import Session, client_address, encode_session, session_key, session_record
from node.config import NodeConfig, load_config
from node.housekeeping import tidy
from node.keys import LIMITER, STORE
from node.store import Store

Client = TestClient[Any, Any]
ClientFactory = Callable[..., Coroutine[Any, Any, Client]]
NEW_PASSWORD = "a brand new password 2"


@pytest.fixture
def node_dir(tmp_path: Path) -> NodeDir:
    return make_node(tmp_path)


def plain(node_dir: NodeDir, **tunables: Any) -> NodeConfig:
    """Return the node's config on plain http (so the test client sends the cookie back)."""
    return replace(node_dir.config(), public_url="http://osterby.test", **tunables)


def cookie_of(client: Client) -> str:
    return client.session.cookie_jar.filter_cookies(client.make_url("/"))["klynge_session"].value


async def admin_status(client: Client, cookie: str) -> tuple[int, str]:
    """GET /admin with only `cookie`, from a browser that is not the test client."""
    async with aiohttp.ClientSession() as other:
        url = client.make_url("/admin")
        headers = {"Cookie": f"klynge_session={cookie}"}
        async with other.get(url, headers=headers, allow_redirects=False) as response:
            return response.status, await response.text()


# --- sessions -------------------------------------------------------------------------------


async def test_a_cookie_copied_before_logout_stops_working(
    node_dir: NodeDir, aiohttp_client: ClientFactory
) -> None:
    client = await aiohttp_client(create_app(plain(node_dir), housekeeping=False))
    assert await login(client, "bo") == 303
    stolen = cookie_of(client)
    status, page = await admin_status(client, stolen)
    assert status == 200 and "Østerby IF" in page  # the copy works while bo is logged in
    [record] = client.server.app[STORE].sessions()
    assert record.username == "bo" and stolen not in record.id  # only a hash is stored
    token = await csrf(client, "/admin")
    response = await client.post("/logout", data={"csrf_token": token}, allow_redirects=False)
    assert response.status == 303
    status, _ = await admin_status(client, stolen)
    assert status == 303  # sent to the login page: the session ended on the server
    assert client.server.app[STORE].sessions() == []


async def test_sessions_survive_a_restart(node_dir: NodeDir, aiohttp_client: ClientFactory) -> None:
    first = await aiohttp_client(create_app(plain(node_dir), housekeeping=False))
    assert await login(first, "carl") == 303
    cookie = cookie_of(first)
    await first.close()
    second = await aiohttp_client(create_app(plain(node_dir), housekeeping=False))
    status, page = await admin_status(second, cookie)
    assert status == 200 and "Østerby Kirke" in page


async def test_a_password_change_ends_every_session_of_that_user(
    node_dir: NodeDir, aiohttp_client: ClientFactory
) -> None:
    first = await aiohttp_client(create_app(plain(node_dir), housekeeping=False))
    assert await login(first, "bo") == 303
    laptop = cookie_of(first)
    first.session.cookie_jar.clear()
    assert await login(first, "bo") == 303
    phone = cookie_of(first)
    first.session.cookie_jar.clear()
    assert await login(first, "carl") == 303
    carl = cookie_of(first)
    await first.close()
    out = ok(["user", "passwd", str(node_dir.path), "bo", "--password-stdin"],
             stdin=NEW_PASSWORD + "\n")  # fmt: skip
    assert "changed the password of bo" in out
    second = await aiohttp_client(create_app(plain(node_dir), housekeeping=False))
    assert (await admin_status(second, laptop))[0] == 303
    assert (await admin_status(second, phone))[0] == 303
    assert (await admin_status(second, carl))[0] == 200  # another user's session stays
    assert await login(second, "bo") == 401
    assert await login(second, "bo", NEW_PASSWORD) == 303


async def test_removing_a_user_ends_its_sessions_and_revokes_its_tokens(
    node_dir: NodeDir, aiohttp_client: ClientFactory
) -> None:
    first = await aiohttp_client(create_app(plain(node_dir), housekeeping=False))
    assert await login(first, "bo") == 303
    cookie = cookie_of(first)
    await first.close()
    assert "removed bo" in ok(["user", "remove", str(node_dir.path), "bo"])
    second = await aiohttp_client(create_app(plain(node_dir), housekeeping=False))
    assert (await admin_status(second, cookie))[0] == 303
    assert await login(second, "bo") == 401
    assert (await second.get("/api/events", headers=auth(node_dir.token))).status == 401
    [record] = [t for t in second.server.app[STORE].tokens() if t.username == "bo"]
    assert record.revoked  # a later user named bo does not inherit the token
    assert (await second.get("/api/events", headers=auth(node_dir.other_token))).status == 200


async def test_a_session_of_a_user_who_no_longer_exists_is_refused(
    node_dir: NodeDir, aiohttp_client: ClientFactory
) -> None:
    client = await aiohttp_client(create_app(plain(node_dir), housekeeping=False))
    store = client.server.app[STORE]
    session = Session(nonce="n" * 22, id="s" * 43)
    await store.save_session(session_record(session, "ghost", utc_now()))
    cookie = encode_session(plain(node_dir).secret_key, session)
    assert store.session(session_key(session.id)) is not None
    assert (await admin_status(client, cookie))[0] == 303


async def test_sessions_expire_after_14_days_on_the_nodes_clock(
    node_dir: NodeDir, aiohttp_client: ClientFactory
) -> None:
    first = await aiohttp_client(create_app(plain(node_dir), housekeeping=False))
    assert await login(first, "bo") == 303
    cookie = cookie_of(first)
    await first.close()
    day13 = plain(node_dir, clock=Clock(timedelta(days=13, hours=23)))
    second = await aiohttp_client(create_app(day13, housekeeping=False))
    assert (await admin_status(second, cookie))[0] == 200
    await second.close()
    day15 = plain(node_dir, clock=Clock(timedelta(days=15)))
    third = await aiohttp_client(create_app(day15, housekeeping=False))
    assert (await admin_status(third, cookie))[0] == 303
    store = third.server.app[STORE]
    assert len(store.sessions()) == 1
    await tidy(store)  # housekeeping drops the expired record
    assert store.sessions() == []


def test_cli_user_commands_refuse_a_served_directory_and_unknown_users(node_dir: NodeDir) -> None:
    with DataDirLock(node_dir.path):
        code, _, err = cli(["user", "remove", str(node_dir.path), "bo"])
        assert code == 1 and "in use by process" in err
    code, _, err = cli(["user", "remove", str(node_dir.path), "nobody"])
    assert code == 1 and "no user 'nobody'" in err
    code, _, err = cli(["user", "passwd", str(node_dir.path), "bo", "--password-stdin"],
                       stdin="short\n")  # fmt: skip
    assert code == 1 and "10 characters" in err
    store = Store.open(node_dir.path / "node.json")
    assert store.user("bo") is not None
    store.close()


# --- trusted proxies ------------------------------------------------------------------------

LOCAL = (ipaddress.ip_network("127.0.0.1"),)


@pytest.mark.parametrize(
    ("peer", "forwarded", "proxies", "client"),
    [
        ("192.168.1.20", ["203.0.113.9"], (), "192.168.1.20"),  # no proxies trusted
        ("192.168.1.20", ["203.0.113.9"], LOCAL, "192.168.1.20"),  # a LAN client, not a proxy
        ("127.0.0.1", ["203.0.113.9"], LOCAL, "203.0.113.9"),
        ("127.0.0.1", ["10.9.9.9, 203.0.113.9"], LOCAL, "203.0.113.9"),  # left part is forged
        ("127.0.0.1", ["198.51.100.1", "203.0.113.9"], LOCAL, "203.0.113.9"),  # two headers
        ("::ffff:127.0.0.1", ["203.0.113.9"], LOCAL, "203.0.113.9"),
        # Two proxies of ours: skip every trusted hop from the right.
        ("127.0.0.1", ["198.51.100.1, 203.0.113.9, 10.0.0.5"],
         (*LOCAL, ipaddress.ip_network("10.0.0.0/8")), "203.0.113.9"),
        ("127.0.0.1", [], LOCAL, "127.0.0.1"),
        ("127.0.0.1", ["127.0.0.1"], LOCAL, "127.0.0.1"),
    ],
)  # fmt: skip
def test_client_address(
    peer: str,
    forwarded: list[str],
    proxies: tuple[ipaddress.IPv4Network, ...],
    client: str,
) -> None:
    assert client_address(peer, forwarded, proxies) == client


def test_trusted_proxies_setting_and_environment(node_dir: NodeDir) -> None:
    assert load_config(node_dir.path, env={}).trusted_proxies == ()
    env = {"KLYNGE_TRUSTED_PROXIES": "127.0.0.1, 10.0.0.0/8 ::1"}
    proxies = load_config(node_dir.path, env=env).trusted_proxies
    assert [str(p) for p in proxies] == ["127.0.0.1/32", "10.0.0.0/8", "::1/128"]
    with (node_dir.path / "node.toml").open("a", encoding="utf-8") as f:
        f.write('trusted_proxies = ["127.0.0.1"]\n')
    assert [str(p) for p in load_config(node_dir.path, env={}).trusted_proxies] == ["127.0.0.1/32"]
    with pytest.raises(ConfigError, match="trusted_proxies: 'localhost'"):
        load_config(node_dir.path, env={"KLYNGE_TRUSTED_PROXIES": "localhost"})


async def lan_login(client: Client, source: str, forwarded: str, name: str, password: str) -> int:
    """Log in from the loopback address `source` (a client on the LAN) with a forged header."""
    connector = aiohttp.TCPConnector(local_addr=(source, 0))
    jar = aiohttp.CookieJar(unsafe=True)  # keep cookies of an IP address
    async with aiohttp.ClientSession(connector=connector, cookie_jar=jar) as lan:
        async with lan.get(client.make_url("/login")) as response:
            token = (await response.text()).split('name="csrf_token" value="')[1].split('"')[0]
        form = {"csrf_token": token, "username": name, "password": password}
        headers = {"X-Forwarded-For": forwarded}
        url = client.make_url("/login")
        async with lan.post(url, data=form, headers=headers, allow_redirects=False) as response:
            return response.status


async def test_a_direct_client_cannot_choose_its_address(
    node_dir: NodeDir, aiohttp_client: ClientFactory
) -> None:
    # The proxy is 127.0.0.1; the LAN client connects from 127.0.0.2 and forges the header.
    config = plain(node_dir, login_limit_address=3, trusted_proxies=LOCAL)
    client = await aiohttp_client(create_app(config, housekeeping=False))
    for n in range(3):  # a new "address" each time: all count against 127.0.0.2
        forged = f"198.51.100.{n}"
        assert await lan_login(client, "127.0.0.2", forged, f"x{n}", "wrong password!") == 401
    assert await lan_login(client, "127.0.0.2", "198.51.100.50", "carl", PASSWORD) == 429
    limiter = client.server.app[LIMITER]
    assert limiter.blocked("carl", "127.0.0.2")
    assert not limiter.blocked("carl", "198.51.100.0")  # nobody else got locked out
    # Through the proxy the forwarded address counts, so another resident still gets in.
    token = await csrf(client, "/login")
    form = {"csrf_token": token, "username": "carl", "password": PASSWORD}
    headers = {"X-Forwarded-For": "198.51.100.0"}
    response = await client.post("/login", data=form, headers=headers, allow_redirects=False)
    assert response.status == 303


# --- the login limit ------------------------------------------------------------------------


async def proxied_login(client: Client, address: str, name: str, password: str) -> Any:
    token = await csrf(client, "/login")
    form = {"csrf_token": token, "username": name, "password": password}
    headers = {"X-Forwarded-For": address, "Accept-Language": "da"}
    return await client.post("/login", data=form, headers=headers, allow_redirects=False)


async def test_a_stranger_cannot_lock_a_volunteer_out(
    node_dir: NodeDir, aiohttp_client: ClientFactory
) -> None:
    client = await aiohttp_client(create_app(plain(node_dir, trusted_proxies=LOCAL),
                                             housekeeping=False))  # fmt: skip
    statuses = []
    for _ in range(20):
        response = await proxied_login(client, "203.0.113.66", "bo", "wrong password!")
        statuses.append(response.status)
    assert statuses == [401] * 5 + [429] * 15
    page = await response.text()
    assert "For mange mislykkede forsøg. Vent 15 minutter, og prøv igen." in page
    assert response.headers["Retry-After"] == "900"
    response = await proxied_login(client, "198.51.100.7", "bo", PASSWORD)
    assert response.status == 303  # bo, at home, gets in at once
    response = await proxied_login(client, "203.0.113.66", "bo", PASSWORD)
    assert response.status == 429  # the stranger's address stays refused, even for bo


async def test_the_address_limit_still_bounds_guessing_across_names(
    node_dir: NodeDir, aiohttp_client: ClientFactory
) -> None:
    config = plain(node_dir, trusted_proxies=LOCAL)
    client = await aiohttp_client(create_app(config, housekeeping=False))
    names = ["anna", "bo", "carl", "dora"]
    statuses = [
        (await proxied_login(client, "203.0.113.66", names[n % 4], f"guess {n}")).status
        for n in range(24)
    ]
    assert statuses == [401] * 20 + [429] * 4
