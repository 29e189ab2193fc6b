"""Shared pytest fixtures; keep this file small and put helpers beside the tests that use them."""

from __future__ import annotations
