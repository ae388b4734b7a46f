"""A small static page for the demo (``GET /demo``): one user's orders, positions and
balances, live over the notifier's own WebSocket, loaded then streamed without a gap
(REST snapshots merged by ``seq``). The token comes from the URL's fragment
(``/demo#token=<jwt>``, never sent to the server) or is pasted into the page.

Self-contained: HTML, CSS and JS in this folder, nothing fetched from elsewhere.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import BaseRoute, Route

__all__ = ["demo_routes"]

HERE = Path(__file__).resolve().parent
_FILES = {
    "/demo": ("demo.html", "text/html; charset=utf-8"),
    "/demo/demo.js": ("demo.js", "text/javascript; charset=utf-8"),
    "/demo/demo.css": ("demo.css", "text/css; charset=utf-8"),
}
_HEADERS = {
    "Cache-Control": "no-cache",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": (
        "default-src 'self'; connect-src 'self' ws: wss:; img-src 'self' data:; "
        "frame-ancestors 'none'"
    ),
}


def _endpoint(file: Path, media_type: str) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(_request: Request) -> Response:
        return FileResponse(file, media_type=media_type, headers=_HEADERS)

    return endpoint


def demo_routes() -> list[BaseRoute]:
    """The page's routes, for ``app.router.routes.extend(...)``."""
    return [
        Route(path, _endpoint(HERE / name, media_type), methods=["GET"], include_in_schema=False)
        for path, (name, media_type) in _FILES.items()
    ]
