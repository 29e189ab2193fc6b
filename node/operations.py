"""The node's admin commands as store changes: run by the CLI directly, or by the service.

Each operation checks its parameters against the store and returns the change to commit and
what to tell the operator. `klynge node user …` and `token …` send the operation to the
running service over its control socket (klynge.control), which commits it like any other
change, so it takes effect at once; with no service running the CLI commits it itself.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

from klynge.control import Handler, Params, Result
from klynge.errors import NotFound, ValidationError
from klynge.messages import Message, define
from klynge.model import clean_text
from node.auth import new_token, token_id_of
from node.store import Change, Store, User

USER_EXISTS = define("node.user_exists", "user '%(username)s' already exists")
NO_USER = define("node.no_user", "no user '%(username)s'")
NO_USER_ADD = define("node.no_user_add", "no user '%(username)s'; add it first")
NO_TOKEN = define("node.no_token", "no token '%(token)s'; token ids are 8 hex characters")
BAD_PARAM = define("node.bad_param", "the command needs %(name)s as text")

log = logging.getLogger("node")
Operation = Callable[[Store, Params], tuple[Change, Result]]


def _text(params: Params, name: str) -> str:
    value = params.get(name)
    if not isinstance(value, str) or not value:
        raise ValidationError({name: Message(BAD_PARAM, {"name": name})})
    return value


def _existing(store: Store, username: str, code: str = NO_USER) -> User:
    user = store.user(username)
    if user is None:
        raise NotFound(Message(code, {"username": username}))
    return user


def add_user(store: Store, params: Params) -> tuple[Change, Result]:
    """Add a user with an already hashed password; refuse a taken name."""
    username = _text(params, "username")
    if store.user(username) is not None:
        raise ValidationError({"username": Message(USER_EXISTS, {"username": username})})
    user = User(
        username=username,
        association=clean_text(_text(params, "association")),
        password_hash=_text(params, "password_hash"),
        admin=bool(params.get("admin")),
        created=store.clock.now().isoformat(),
    )
    result = {"username": username, "association": user.association, "admin": user.admin}
    return store.user_change(user), result


def set_password(store: Store, params: Params) -> tuple[Change, Result]:
    """Set a user's password hash and end the user's sessions."""
    username = _text(params, "username")
    user = replace(_existing(store, username), password_hash=_text(params, "password_hash"))
    return store.password_change(user), {"username": username}


def remove_user(store: Store, params: Params) -> tuple[Change, Result]:
    """Remove a user, its sessions and (revoking them) its tokens."""
    username = _text(params, "username")
    _existing(store, username)
    return store.remove_user_change(username, store.clock.now()), {"username": username}


def add_token(store: Store, params: Params) -> tuple[Change, Result]:
    """Make a token for a user; the result holds the secret, shown once."""
    username = _text(params, "username")
    _existing(store, username, NO_USER_ADD)
    record, token = new_token(username, store.clock.now())
    return store.token_change(record), {"id": record.id, "username": username, "token": token}


def revoke_token(store: Store, params: Params) -> tuple[Change, Result]:
    """Revoke a token by its id (or the token, or a prefix of it that holds the id)."""
    given = _text(params, "token").strip()
    record = store.token(token_id_of(given))
    if record is None:
        raise NotFound(Message(NO_TOKEN, {"token": given}))
    revoked = replace(record, revoked=store.clock.now().isoformat())
    return store.token_change(revoked), {"id": record.id, "username": record.username}


OPERATIONS: Mapping[str, Operation] = {
    "user add": add_user,
    "user passwd": set_password,
    "user remove": remove_user,
    "token add": add_token,
    "token revoke": revoke_token,
}


def run_direct(store: Store, name: str, params: Params) -> Result:
    """Run an operation on a store opened by the CLI (no service running)."""
    change, result = OPERATIONS[name](store, params)
    store.commit_sync(change)
    return result


def handlers(store: Store) -> dict[str, Handler]:
    """Return the control socket's handlers, committing to the service's store."""

    def handler(name: str, operation: Operation) -> Handler:
        async def run(params: Params) -> dict[str, Any]:
            change, result = operation(store, params)
            await store.commit(change)
            log.info("%s %s", name, result.get("username", ""))  # never the token itself
            return result

        return run

    return {name: handler(name, operation) for name, operation in OPERATIONS.items()}
