"""Serve an ASGI app for a test over a real socket on 127.0.0.1."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import uvicorn


@contextmanager
def serve_in_thread(app: Any, *, start_timeout_s: float = 5.0) -> Iterator[str]:
    """Run ``app`` under uvicorn in a thread on a free port; yields its base URL and
    stops it (lifespan included) when the block ends."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    # uvicorn installs no signal handlers outside the main thread
    server = uvicorn.Server(
        uvicorn.Config(app, log_level="warning", lifespan="on", timeout_graceful_shutdown=2)
    )
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    waited = threading.Event()
    steps = int(start_timeout_s / 0.01)
    for _ in range(steps):
        if server.started:
            break
        if not thread.is_alive():
            raise RuntimeError("the server did not start")
        waited.wait(0.01)
    else:
        raise RuntimeError(f"the server did not start in {start_timeout_s} s")
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
