"""A big answer kept as the pieces it is made of, and served without joining them.

At 50,000 entries `calendar.ics` is 24 MB and a month of `/api/events` 12 MB, made of bytes the
pieces cache holds already (aggregator.publish.pieces). Joined after every change, each was a
second copy of those bytes, in fresh memory faulted in while the builder held the GIL
(tracemalloc: the two largest single blocks of a region). Kept as a tuple of the same pieces,
an answer costs a pointer per piece, and it is written out a few dozen kilobytes at a time.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from aiohttp.abc import AbstractStreamWriter
from aiohttp.payload import Payload

WRITE = 64 * 1024  # bytes joined per write: a join this small never holds the event loop


@dataclass(frozen=True)
class Parts:
    """An answer's bytes as pieces in order, their total size and a strong ETag of them."""

    chunks: tuple[bytes, ...]
    size: int
    etag: str

    @classmethod
    def of(cls, chunks: Iterable[bytes]) -> Parts:
        """Return the pieces with their size and ETag (the hash of the joined bytes)."""
        kept = tuple(chunk for chunk in chunks if chunk)
        digest = hashlib.blake2b(digest_size=12)
        for chunk in kept:
            digest.update(chunk)
        return cls(kept, sum(map(len, kept)), f'"{digest.hexdigest()}"')

    def joined(self) -> bytes:
        """Return the answer's bytes in one (tests, and small answers)."""
        return b"".join(self.chunks)

    def body(self, content_type: str) -> bytes | PartsPayload:
        """Return what aiohttp sends: the bytes of a one-piece answer, else the pieces."""
        if len(self.chunks) <= 1:
            return self.joined()
        return PartsPayload(self, content_type=content_type)


class PartsPayload(Payload):
    """An aiohttp body that writes Parts in joins of about WRITE bytes (Content-Length set)."""

    _value: Parts

    def __init__(self, value: Parts, *args: Any, **kwargs: Any) -> None:
        super().__init__(value, *args, **kwargs)
        self._size = value.size

    @property
    def parts(self) -> Parts:
        """The answer this payload writes."""
        return self._value

    async def write(self, writer: AbstractStreamWriter) -> None:
        """Write every piece; the writer waits for the client when its buffer is full."""
        batch: list[bytes] = []
        held = 0
        for chunk in self._value.chunks:
            batch.append(chunk)
            held += len(chunk)
            if held >= WRITE:
                await writer.write(b"".join(batch))
                batch, held = [], 0
        if batch:
            await writer.write(b"".join(batch))

    def decode(self, encoding: str = "utf-8", errors: str = "strict") -> str:
        """Return the answer as text."""
        return self._value.joined().decode(encoding, errors)
