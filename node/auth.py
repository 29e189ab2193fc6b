"""Who is asking: argon2 passwords, signed sessions, CSRF tokens, API tokens, login limits."""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import json
import secrets
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from klynge.errors import Unauthorized
from klynge.i18n import N_
from klynge.sliding import SlidingCounts
from node.store import SessionRecord, Store, TokenRecord, User

SESSION_COOKIE = "klynge_session"
SESSION_MAX_AGE = 14 * 24 * 3600
TOKEN_PREFIX = "kn_"

# OWASP's minimum argon2id setting (19 MiB, t=2): a Pi can afford it per login, and it keeps
# the node's memory small (argon2-cffi's default asks for 64 MiB per hash).
_hasher = PasswordHasher(time_cost=2, memory_cost=19 * 1024, parallelism=1)


def hash_password(password: str) -> str:
    """Return an argon2id hash of `password`."""
    return _hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    """Tell whether `password` matches the stored argon2 hash."""
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


# --- API tokens ---------------------------------------------------------------------------


def token_hash(token: str) -> str:
    """Return the stored form of a token: sha256 is enough for 256 random bits."""
    return hashlib.sha256(token.encode()).hexdigest()


def new_token(username: str, created: datetime) -> tuple[TokenRecord, str]:
    """Make a token for `username`: the record to store and the secret to show once."""
    token_id = secrets.token_hex(4)
    token = f"{TOKEN_PREFIX}{token_id}_{secrets.token_urlsafe(32)}"
    return TokenRecord(
        id=token_id, username=username, hash=token_hash(token), created=created.isoformat()
    ), token


def token_id_of(value: str) -> str:
    """Return the token id in a token id, a whole token or a token's prefix."""
    if value.startswith(TOKEN_PREFIX):
        return value[len(TOKEN_PREFIX) :].split("_", 1)[0]
    return value


def user_for_token(store: Store, authorization: str) -> User:
    """Return the user of a `Bearer` token, or raise Unauthorized saying what is wrong."""
    scheme, _, token = authorization.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise Unauthorized(N_("Send an API token: Authorization: Bearer TOKEN."))
    record = store.token(token_id_of(token)) if token.startswith(TOKEN_PREFIX) else None
    if record is None or not hmac.compare_digest(record.hash, token_hash(token)):
        raise Unauthorized(N_("The API token is not valid."))
    if record.revoked:
        raise Unauthorized(N_("The API token has been revoked."))
    user = store.user(record.username)
    if user is None:
        raise Unauthorized(N_("The API token's user no longer exists."))
    return user


# --- sessions and CSRF ----------------------------------------------------------------------


@dataclass(frozen=True)
class Session:
    """A browser session as its signed cookie carries it.

    `nonce` binds the CSRF tokens of its forms; `id` is empty for a visitor who has not
    logged in, else the secret that names the server-side record (node.store.SessionRecord,
    stored under `session_key(id)`). Logging out deletes that record, so a copy of the
    cookie stops working at once.
    """

    nonce: str
    id: str = ""


def new_session(logged_in: bool = False) -> Session:
    """Start a session with a fresh nonce (a new one at login prevents session fixation)."""
    return Session(
        nonce=secrets.token_urlsafe(16), id=secrets.token_urlsafe(32) if logged_in else ""
    )


def session_key(session_id: str) -> str:
    """Return the stored key of a session id: the store never holds a usable cookie secret."""
    return hashlib.sha256(session_id.encode()).hexdigest()


def session_record(session: Session, username: str, created: datetime) -> SessionRecord:
    """Return the record to store when `username` logs in with `session`."""
    return SessionRecord(id=session_key(session.id), username=username, created=created.isoformat())


def session_expired(record: SessionRecord, now: datetime) -> bool:
    """Tell whether a stored session is older than SESSION_MAX_AGE at `now`."""
    age = now - datetime.fromisoformat(record.created)
    return age.total_seconds() > SESSION_MAX_AGE


def _sign(secret: str, payload: bytes) -> str:
    mac = hmac.new(secret.encode(), payload, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac).decode().rstrip("=")


def encode_session(secret: str, session: Session) -> str:
    """Return the signed cookie value of a session."""
    data = {"n": session.nonce, "s": session.id}
    payload = base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")
    return f"{payload}.{_sign(secret, payload.encode())}"


def decode_session(secret: str, value: str) -> Session | None:
    """Return the session in a cookie value, or None when forged or damaged."""
    payload, _, mac = value.partition(".")
    if not mac or not hmac.compare_digest(mac, _sign(secret, payload.encode())):
        return None
    try:
        data = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        return Session(nonce=str(data["n"]), id=str(data["s"]))
    except (ValueError, KeyError, TypeError):
        return None


def csrf_token(secret: str, session: Session) -> str:
    """Return the CSRF token for forms in this session."""
    return _sign(secret, f"csrf:{session.nonce}".encode())


def csrf_ok(secret: str, session: Session, given: str) -> bool:
    """Tell whether a form's CSRF token belongs to this session."""
    return bool(given) and hmac.compare_digest(given, csrf_token(secret, session))


# --- the client's address -------------------------------------------------------------------


def _ip(value: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        ip = ipaddress.ip_address(value.strip())
    except ValueError:
        return None
    mapped = ip.ipv4_mapped if isinstance(ip, ipaddress.IPv6Address) else None
    return mapped or ip


def _trusted(value: str, proxies: Iterable[ipaddress.IPv4Network | ipaddress.IPv6Network]) -> bool:
    ip = _ip(value)
    return ip is not None and any(ip in network for network in proxies)


def client_address(
    peer: str,
    forwarded: Sequence[str],
    proxies: Sequence[ipaddress.IPv4Network | ipaddress.IPv6Network],
) -> str:
    """Return the client's address given the direct peer and its X-Forwarded-For headers.

    The header is believed only when the peer is a trusted proxy; then each proxy appended
    the address it saw, so the right-most hop that is not a trusted proxy is the client (the
    hops left of it were written by the client and prove nothing).
    """
    if not forwarded or not _trusted(peer, proxies):
        return peer
    hops = [hop.strip() for header in forwarded for hop in header.split(",") if hop.strip()]
    for hop in reversed(hops):
        if not _trusted(hop, proxies):
            return hop
    return hops[0] if hops else peer


# --- login rate limit -----------------------------------------------------------------------


class LoginLimiter:
    """Counts failed logins per (username, address) pair and per address in a sliding window.

    The per-user limit counts one user's failures from one address only, so a stranger who
    fails with a user's name locks out only himself, never the user at another address; the
    per-address limit bounds guessing across many usernames from one address. (Guessing one
    password from many addresses is still slowed by the argon2 hash of every attempt.)

    Only failures are remembered, and stale ones are swept once per window, so a stream of
    made-up usernames or addresses cannot grow the node's memory without end.
    """

    def __init__(
        self,
        per_user: int,
        per_address: int,
        window: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.per_user = per_user
        self.per_address = per_address
        self.window = window
        self.clock = clock
        self._failures = SlidingCounts(window, clock())

    def __len__(self) -> int:
        """Return how many (username, address) pairs and addresses have failures on record."""
        return len(self._failures)

    def _count(self, key: str) -> int:
        return self._failures.count(key, self.clock())

    @staticmethod
    def _pair(username: str, address: str) -> str:
        return f"u:{address} {username.casefold()}"  # an address holds no space

    def blocked(self, username: str, address: str) -> bool:
        """Tell whether this user from this address, or this address, failed too often lately."""
        return (
            self._count(self._pair(username, address)) >= self.per_user
            or self._count(f"a:{address}") >= self.per_address
        )

    def failed(self, username: str, address: str) -> None:
        """Record one failed login (or one being checked: see node.accounts.login)."""
        self._failures.add((self._pair(username, address), f"a:{address}"), self.clock())

    def succeeded(self, username: str, address: str) -> None:
        """Forget the user's failures from this address, and take back the address's count."""
        self._failures.forget(self._pair(username, address))
        self._failures.take_back(f"a:{address}")
