"""The sandbox's HTTP server: uvicorn's httptools protocol with one write per answer.

uvicorn writes an answer's status line and headers (`http.response.start`) and its body
(`http.response.body`) with two `transport.write` calls: two `send` system calls per
request, and two segments the client reads (and wakes up for) one by one. For a small JSON
answer those syscalls cost more than building the answer. `CoalescingTransport` holds what
is written until the end of the current event-loop step (or until the next write, which
then goes out together with it), so an answer leaves in one segment. Nothing is reordered,
dropped or delayed past the step: `close` sends what is held first (the fault layer's
"drop" mode still sends the status line and headers before the connection is cut), `abort`
discards it as the real transport would discard its buffer.
"""

from __future__ import annotations

import asyncio
from typing import Any, cast

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

__all__ = ["CoalescingTransport", "SandboxHttpProtocol"]


class CoalescingTransport:
    """Wraps an `asyncio.Transport`: writes in one loop step are joined into one write."""

    __slots__ = ("_held", "_loop", "_transport")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._held: bytes | None = None

    def write(self, data: bytes | bytearray | memoryview) -> None:
        held = self._held
        if held is None:
            self._held = bytes(data)
            self._loop.call_soon(self.flush)
        else:  # the body after its head: both go now, in one segment
            self._held = None
            self._transport.write(held + bytes(data))

    def writelines(self, lines: Any) -> None:
        self.write(b"".join(lines))

    def flush(self) -> None:
        """Send what is held (a no-op when nothing is)."""
        held, self._held = self._held, None
        if held is not None and not self._transport.is_closing():
            self._transport.write(held)

    def get_write_buffer_size(self) -> int:
        held = self._held
        return self._transport.get_write_buffer_size() + (len(held) if held else 0)

    def write_eof(self) -> None:
        self.flush()
        self._transport.write_eof()

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def abort(self) -> None:
        self._held = None
        self._transport.abort()

    def __getattr__(self, name: str) -> Any:
        # is_closing, get_extra_info, pause_reading, resume_reading, set_protocol, ...
        return getattr(self._transport, name)


class SandboxHttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol over a `CoalescingTransport` (``uvicorn.Config(http=...)``)."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        wrapped = CoalescingTransport(cast(asyncio.Transport, transport), self.loop)
        super().connection_made(cast(asyncio.Transport, wrapped))
