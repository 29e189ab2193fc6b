"""Reading a response body under caps on the wire and after decompression, as it streams."""

from __future__ import annotations

import zlib

import aiohttp

from klynge.http.problems import (
    BAD_CODING,
    CODING_CUT,
    CODING_REFUSED,
    CODING_TRAILER,
    TOO_LARGE,
    TOO_LARGE_DECLARED,
    TOO_LARGE_DECODED,
    fail,
    printable,
    size_words,
)

CHUNK = 64 * 1024
# We do not advertise br/zstd: zlib is in the standard library and lets us cap the output.
ACCEPT_ENCODING = "gzip, deflate"


async def read_capped(
    resp: aiohttp.ClientResponse, max_compressed: int, max_decompressed: int
) -> bytes:
    """Stream a body, capping the bytes on the wire and the bytes after decompression."""
    cap = max_compressed
    declared = resp.content_length
    if declared is not None and declared > cap:
        raise fail(
            TOO_LARGE_DECLARED, limit=size_words(cap), size=size_words(declared), limit_bytes=cap
        )
    decoder = _Decoder(resp.headers.get("Content-Encoding", ""), max_decompressed)
    received = 0
    async for chunk in resp.content.iter_chunked(CHUNK):
        received += len(chunk)
        if received > cap:
            raise fail(TOO_LARGE, limit=size_words(cap), limit_bytes=cap)
        decoder.feed(chunk)
    return decoder.finish()


class _Decoder:
    """Decodes a Content-Encoding incrementally; the output never grows past `cap` + 1 bytes."""

    def __init__(self, content_encoding: str, cap: int) -> None:
        self.coding = _coding(content_encoding)
        self.cap = cap
        self.parts: list[bytes] = []
        self.size = 0
        self.fed = False
        self.pending = b""  # deflate only: the first bytes, until we can tell zlib from raw
        self.inflater: zlib._Decompress | None = None
        if self.coding == "gzip":
            self.inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)

    def feed(self, data: bytes) -> None:
        """Decode one chunk from the wire."""
        if not data:
            return
        self.fed = True
        if self.coding == "identity":
            self._add(data)
            return
        if self.inflater is None:
            data = self._start_deflate(data)
        try:
            self._inflate(data)
        except zlib.error as e:
            raise fail(BAD_CODING, coding=self.coding, detail=str(e)) from e

    def finish(self) -> bytes:
        """Return the whole decoded body, checking the compressed stream was complete."""
        complete = self.inflater is not None and self.inflater.eof
        if self.fed and self.coding != "identity" and not complete:
            raise fail(CODING_CUT, coding=self.coding)
        return b"".join(self.parts)

    def _start_deflate(self, data: bytes) -> bytes:
        """Pick zlib-wrapped or raw deflate once two bytes are known (servers send both)."""
        data = self.pending + data
        if len(data) < 2:
            self.pending = data
            return b""
        self.pending = b""
        wrapped = data[0] & 0x0F == 8 and (data[0] * 256 + data[1]) % 31 == 0  # RFC 1950 §2.2
        self.inflater = zlib.decompressobj(zlib.MAX_WBITS if wrapped else -zlib.MAX_WBITS)
        return data

    def _inflate(self, data: bytes) -> None:
        """Decompress `data` with max_length, so a bomb never allocates more than the cap."""
        while data and self.inflater is not None:
            if self.inflater.eof:
                data = self._next_member(data)
            self._add(self.inflater.decompress(data, self.cap - self.size + 1))
            data = self.inflater.unconsumed_tail or self.inflater.unused_data

    def _next_member(self, data: bytes) -> bytes:
        """Start the next member of a multi-member gzip body (RFC 1952 §2.2)."""
        if self.coding != "gzip":
            raise fail(CODING_TRAILER, coding=self.coding)
        self.inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
        return data

    def _add(self, out: bytes) -> None:
        """Keep decoded bytes, refusing the body once it passes the cap."""
        self.size += len(out)
        if self.size > self.cap:
            code = TOO_LARGE if self.coding == "identity" else TOO_LARGE_DECODED
            raise fail(code, limit=size_words(self.cap), limit_bytes=self.cap)
        if out:
            self.parts.append(out)


def _coding(content_encoding: str) -> str:
    """Name the one compression we must undo: identity, gzip or deflate."""
    codings = [c.strip().lower() for c in content_encoding.split(",")]
    codings = [c for c in codings if c not in ("", "identity")]
    if not codings:
        return "identity"
    if len(codings) == 1 and codings[0] in ("gzip", "x-gzip", "deflate"):
        return "deflate" if codings[0] == "deflate" else "gzip"
    raise fail(CODING_REFUSED, coding=printable(content_encoding, 40))
