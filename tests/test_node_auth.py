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
        limiter.failed(f"guess{n}", "192.0.2.1")
    assert limiter.blocked("guess7", "198.51.100.1") is False  # one failure, limit 2
    limiter.failed("guess7", "198.51.100.1")
    assert limiter.blocked("guess7", "198.51.100.2") is True
    clock.now += 61
    limiter.failed("last", "198.51.100.5")  # the next failure tidies up the old ones
    assert not limiter.blocked("guess7", "198.51.100.2")
    assert len(limiter) == 2  # "last" and its address
