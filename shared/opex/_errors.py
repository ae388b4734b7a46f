"""Every way a call to OPEX can fail, as one exception hierarchy.

```
OpexError                     method, path: a call to OPEX did not succeed
├── OpexRefused               code, http_status, name, message: OPEX answered and said no;
│   │                         the request had no effect; sending it again changes nothing
│   └── OpexAuthError         the credential was refused
│       ├── OpexUnauthenticated   401: no, unknown or disabled key, bad or expired token
│       ├── OpexForbidden         1004, or an empty 403: missing permission, IP or endpoint
│       │                         allow-list (a 403 with another code, 7006, is an OpexRefused)
│       ├── OpexBadSignature      1025: wrong signature, or a timestamp more than 5 min off
│       └── OpexBadTimestamp      1026: X-API-TIMESTAMP is not a number
├── OpexRateLimited           retry_after_s: 429 / 1024; no effect; send again after the delay
├── OpexUnavailable           OPEX could not be reached or could not serve; no effect:
│                             not connected, connect or pool timeout, 503, 408, and any
│                             failure of a request that changes nothing (reads, login)
└── OpexAmbiguous             the request may or may not have taken effect: a read timeout
                              or a dropped connection after it was sent, a 5xx (but 503)
                              or an unreadable answer, each to a request that changes state
                              (place, cancel, deposit, register, api key, pair setting)
```

`may_have_taken_effect` is true only for `OpexAmbiguous`: the order gateway resolves one
by asking OPEX what happened (listing orders), never by sending the request again.
Every other class means OPEX did nothing, so the caller may retry (`OpexRateLimited`
after ``retry_after_s``, `OpexUnavailable` with backoff) or give up (`OpexRefused`).

Which httpx failures mean "not sent": `httpx.ConnectError`, `httpx.ConnectTimeout`,
`httpx.PoolTimeout`, `httpx.ProxyError`, `httpx.UnsupportedProtocol`,
`httpx.LocalProtocolError`. Everything else that can happen after the first byte left
(`ReadTimeout`, `WriteTimeout`, `ReadError`, `WriteError`, `RemoteProtocolError`) means
"maybe sent".

Errors carry the method and the route path, OPEX's code, name and message; never a
header, a query string, a body, a key, a secret, a token or a signature.
"""

from __future__ import annotations

from typing import ClassVar

__all__ = [
    "OpexAmbiguous",
    "OpexAuthError",
    "OpexBadSignature",
    "OpexBadTimestamp",
    "OpexError",
    "OpexForbidden",
    "OpexRateLimited",
    "OpexRefused",
    "OpexUnauthenticated",
    "OpexUnavailable",
]

_MAX_TEXT = 200


def _short(text: str | None) -> str | None:
    if text is None:
        return None
    return text if len(text) <= _MAX_TEXT else text[: _MAX_TEXT - 1] + "…"


class OpexError(Exception):
    """A call to OPEX did not succeed; see the subclasses for what that means."""

    may_have_taken_effect: ClassVar[bool] = False
    code: int | None = None
    """OPEX's error code, when its answer carried one."""
    http_status: int | None = None
    """The HTTP status of the answer; `None` when none came."""

    def __init__(self, message: str, *, method: str = "", path: str = "") -> None:
        super().__init__(message)
        self.message = _short(message) or ""
        self.method = method
        self.path = path

    def __str__(self) -> str:
        where = f"{self.method} {self.path}: " if self.method or self.path else ""
        return f"{where}{self.message}"


class OpexRefused(OpexError):
    """OPEX answered and refused the request; it had no effect.

    ``code`` is OPEX's numeric error code (``4001``), or `None` when the answer carried
    none (Spring Security's empty 401/403, a proxy's 404); ``name`` OPEX's error name
    (``SubmitOrderForbiddenByAccountant``) or the HTTP reason phrase.
    """

    def __init__(
        self,
        message: str | None = None,
        *,
        code: int | None = None,
        http_status: int = 400,
        name: str | None = None,
        method: str = "",
        path: str = "",
    ) -> None:
        self.code = code
        self.http_status = http_status
        self.name = _short(name) or ""
        self.opex_message = _short(message)
        parts = [str(part) for part in (code, self.name or None) if part]
        head = " ".join(parts) if parts else f"HTTP {http_status}"
        text = f"refused by OPEX: {head}"
        if self.opex_message:
            text += f": {self.opex_message}"
        text += f" (HTTP {http_status})" if parts else ""
        super().__init__(text, method=method, path=path)


class OpexAuthError(OpexRefused):
    """OPEX refused the credential (key, signature, timestamp, token or permission)."""


class OpexUnauthenticated(OpexAuthError):
    """401: no credential OPEX recognises (an unknown or disabled key is ignored by OPEX,
    so the protected endpoint answers 401 with an empty body), or a bad or expired token."""


class OpexForbidden(OpexAuthError):
    """403 (1004 when OPEX's API-key filter says it): a permission the user lacks, or a key
    used from an IP or on an endpoint outside its allow-lists."""


class OpexBadSignature(OpexAuthError):
    """1025 (HTTP 400): the signature does not match, or X-API-TIMESTAMP is more than five
    minutes away from OPEX's clock (OPEX answers both the same way)."""


class OpexBadTimestamp(OpexAuthError):
    """1026 (HTTP 400): X-API-TIMESTAMP is not a number."""


class OpexRateLimited(OpexError):
    """429 / 1024: too many requests; nothing was done. Retry after ``retry_after_s``
    seconds: the ``Retry-After`` header when OPEX sends one, otherwise OPEX's first block
    duration (60 s; OPEX blocks a user who keeps exceeding for 60, 120, 180 s)."""

    def __init__(
        self,
        retry_after_s: float,
        *,
        code: int | None = 1024,
        http_status: int = 429,
        message: str | None = None,
        method: str = "",
        path: str = "",
    ) -> None:
        self.retry_after_s = retry_after_s
        self.code = code
        self.http_status = http_status
        text = f"rate-limited by OPEX (HTTP {http_status}); retry after {retry_after_s:g} s"
        if message:
            text += f": {_short(message)}"
        super().__init__(text, method=method, path=path)


class OpexUnavailable(OpexError):
    """OPEX could not be reached or could not serve the request, and nothing was done.

    ``http_status`` is set when OPEX (or a proxy) answered, ``retry_after_s`` when the
    answer said when to come back.
    """

    def __init__(
        self,
        message: str,
        *,
        http_status: int | None = None,
        code: int | None = None,
        retry_after_s: float | None = None,
        method: str = "",
        path: str = "",
    ) -> None:
        self.http_status = http_status
        self.code = code
        self.retry_after_s = retry_after_s
        super().__init__(f"OPEX unavailable: {message}", method=method, path=path)


class OpexAmbiguous(OpexError):
    """The request may or may not have taken effect. Find out by asking OPEX (the order
    listings, the wallet); never by sending it again.

    ``http_status`` is set when an answer came back (a 5xx, or a 2xx the client could not
    read), `None` when the connection failed after the request was sent.
    """

    may_have_taken_effect: ClassVar[bool] = True

    def __init__(
        self,
        message: str,
        *,
        http_status: int | None = None,
        code: int | None = None,
        method: str = "",
        path: str = "",
    ) -> None:
        self.http_status = http_status
        self.code = code
        super().__init__(f"outcome unknown: {message}", method=method, path=path)
