"""The login rate limiter on its own, with a fake clock (the pages tests drive it over HTTP)."""

from __future__ import annotations

from node.auth import LoginLimiter


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_limiter_keeps_nothing_for_names_that_never_failed() -> None:
    # Every login attempt asks blocked() first: unknown names must not be remembered, or a
    # stream of made-up usernames grows the node's memory without end.
    limiter = LoginLimiter(5, 20, 60.0, Clock())
    for n in range(1000):
        assert not limiter.blocked(f"nobody{n}", f"10.0.{n // 250}.{n % 250}")
    assert len(limiter) == 0


def test_limiter_forgets_failures_once_the_window_has_passed() -> None:
    clock = Clock()
    limiter = LoginLimiter(2, 20, 60.0, clock)
    for n in range(3000):
        limiter.failed(f"guess{n}", f"192.0.2.{n % 200}")
    assert limiter.blocked("guess7", "192.0.2.7") is False  # one failure, limit 2
    limiter.failed("guess7", "192.0.2.7")
    assert limiter.blocked("guess7", "192.0.2.7") is True
    clock.now += 61
    limiter.failed("last", "198.51.100.5")  # the next failure tidies up the old ones
    assert not limiter.blocked("guess7", "192.0.2.7")
    assert len(limiter) == 2  # "last" from its address, and its address


def test_failures_count_per_username_and_address_pair() -> None:
    limiter = LoginLimiter(2, 20, 60.0, Clock())
    for _ in range(2):
        limiter.failed("Bo", "203.0.113.66")
    assert limiter.blocked("bo", "203.0.113.66")  # names compare case-blind
    assert not limiter.blocked("bo", "198.51.100.7")  # the stranger's failures stay his own
    assert not limiter.blocked("carl", "203.0.113.66")
    limiter.succeeded("bo", "198.51.100.7")  # a good login elsewhere forgets nothing here
    assert limiter.blocked("bo", "203.0.113.66")
