"""`OpexClient`: one pooled async HTTP client per process, typed calls, typed failures."""

from __future__ import annotations

import functools
import json
import logging
import re
import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal
from email.utils import parsedate_to_datetime
from types import TracebackType
from typing import Any, Literal, TypeVar
from urllib.parse import urlencode, urlsplit

import httpx
import structlog
from pydantic import BaseModel, SecretStr, ValidationError

from shared.contracts import normalize_symbol
from shared.observability.metrics import OPEX_REQUEST_SECONDS
from shared.observability.tracing import current_traceparent
from shared.opex._auth import Bearer, Clock, Credentials, OpexAuth, system_clock
from shared.opex._errors import (
    OpexAmbiguous,
    OpexBadSignature,
    OpexBadTimestamp,
    OpexError,
    OpexForbidden,
    OpexRateLimited,
    OpexRefused,
    OpexUnauthenticated,
    OpexUnavailable,
)
from shared.opex._models import (
    Account,
    ActionToken,
    ApiKeySecret,
    Balance,
    CancelAck,
    DepositResult,
    Depth,
    ExchangeInfo,
    Health,
    Order,
    OrderAck,
    OrderType,
    PairInfo,
    PairSetting,
    PriceTicker,
    PublicTrade,
    Registration,
    Side,
    Ticker,
    TimeInForce,
    Token,
    Trade,
)
from shared.opex._settings import OpexSettings, Surface
from shared.opex._transport import AiohttpTransport, RawResponse
from shared.opex._wire import LeanTransport

__all__ = ["OpexClient", "TickerWindow", "Timestamp"]

_LOGGER = "shared.opex"

M = TypeVar("M", bound=BaseModel)
Base = Literal["api", "market", "matching"]
TickerWindow = Literal["24h", "7d", "1M"]
Timestamp = datetime | int
"""A point in time: an aware datetime or epoch milliseconds."""

_FORM = "application/x-www-form-urlencoded"
_NOT_SENT = (
    httpx.ConnectError,
    httpx.ConnectTimeout,
    httpx.PoolTimeout,
    httpx.ProxyError,
    httpx.UnsupportedProtocol,
    httpx.LocalProtocolError,
)


_PLAIN_ROUTE = re.compile(r"/[A-Za-z0-9/_.~:@=,+-]*")
"""A route httpx would send exactly as written (nothing to percent-encode, no ``?``):
what the lean path (`OpexClient._send_lean`) takes; any other goes through httpx."""
_PLAIN_VALUE = re.compile(r"[A-Za-z0-9_.~-]*")
"""A query key or value that `urlencode` leaves as it is."""

_logger_cache: tuple[tuple[Any, ...], Any] | None = None


def _request_logger() -> tuple[Any, bool]:
    """The ``opex.request`` logger and whether it writes debug lines.

    structlog is configured at start-up, and may be configured again (tests do): the bound
    logger is kept only as long as structlog's configuration is made of the same objects,
    which costs a dict lookup per call instead of building a logger."""
    global _logger_cache
    config = structlog.get_config()
    key = (
        config["wrapper_class"],
        config["processors"],
        config["logger_factory"],
        config["context_class"],
    )
    cached = _logger_cache
    if (
        cached is not None
        and cached[0][0] is key[0]
        and cached[0][1] is key[1]
        and cached[0][2] is key[2]
        and cached[0][3] is key[3]
    ):
        logger = cached[1]
    else:
        logger = structlog.get_logger(_LOGGER).bind()
        _logger_cache = (key, logger)
    enabled = getattr(logger, "is_enabled_for", None)
    return logger, enabled is None or bool(enabled(logging.DEBUG))


def _query(params: Sequence[tuple[str, str]]) -> str:
    """``urlencode(params)``, without quoting what needs none (every field of an order)."""
    parts = []
    for key, value in params:
        if _PLAIN_VALUE.fullmatch(key) is None or _PLAIN_VALUE.fullmatch(value) is None:
            return urlencode(params)
        parts.append(f"{key}={value}")
    return "&".join(parts)


_metric_children: dict[tuple[str, str, str], Any] = {}


def _observe(method: str, route: str, outcome: str, seconds: float) -> None:
    """``OPEX_REQUEST_SECONDS`` for one call (the labelled child looked up once)."""
    key = (method, route, outcome)
    child = _metric_children.get(key)
    if child is None:
        child = OPEX_REQUEST_SECONDS.labels(method, _route_label(route), outcome)
        if len(_metric_children) < 4096:
            _metric_children[key] = child
    child.observe(seconds)


def _dec(value: Decimal | int | str) -> str:
    """A decimal in plain notation (``1000``, ``0.001``; never ``1E+3``)."""
    number = value if isinstance(value, Decimal) else Decimal(str(value))
    if not number.is_finite():
        raise ValueError(f"{value!r} is not a finite number")
    text = format(number, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text or "0"


def _ms(value: Timestamp) -> str:
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError("a naive datetime is ambiguous; give it a timezone")
        return str(int(value.timestamp() * 1000))
    return str(int(value))


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return _dec(value)
    if isinstance(value, SecretStr):
        return value.get_secret_value()
    raise TypeError(f"cannot send {type(value).__name__} to OPEX")


def _engine_types(order_types: Sequence[OrderType | str]) -> str:
    """The matching engine's names of ``order_types`` (OPEX turns every API type but
    MARKET into a limit order): ``LIMIT_ORDER,MARKET_ORDER``."""
    names: list[str] = []
    for kind in order_types:
        text = str(kind.value if isinstance(kind, OrderType) else kind).upper()
        name = (
            text
            if text.endswith("_ORDER")
            else ("MARKET_ORDER" if OrderType(text) is OrderType.MARKET else "LIMIT_ORDER")
        )
        if name not in names:
            names.append(name)
    return ",".join(names)


_JSON = json.JSONDecoder(parse_float=Decimal)
"""What ``json.loads(..., parse_float=Decimal)`` builds on every call."""


def _read_json(content: bytes) -> Any:
    if not content.strip():
        return None
    # json.loads's own steps for bytes, with one decoder for every call
    return _JSON.decode(content.decode(json.detect_encoding(content), "surrogatepass"))


def _retry_after(response: httpx.Response) -> float | None:
    """Seconds from a ``Retry-After`` header (delta seconds or an HTTP date), if any."""
    value = response.headers.get("Retry-After", "").strip()
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def _error_fields(response: httpx.Response) -> tuple[int | None, str | None, str | None]:
    """OPEX's error body ``{"error": name, "code": 4001, "message": ..., "data": ...}``
    (``DefaultExceptionResponse``); Spring's own ``{"status", "error": "Not Found", ...}``
    carries no code. Anything else (an empty 401, HTML) gives nothing."""
    try:
        body = _read_json(response.content)
    except ValueError:
        return None, None, None
    if not isinstance(body, dict):
        return None, None, None
    raw_code = body.get("code")
    code: int | None = None
    if isinstance(raw_code, int | Decimal | str) and not isinstance(raw_code, bool):
        try:
            code = int(raw_code)
        except ValueError:
            code = None
    name = body.get("error")
    message = body.get("message")
    return (
        code,
        name if isinstance(name, str) else None,
        message if isinstance(message, str) else None,
    )


@functools.lru_cache(maxsize=512)
def _route_label(route: str) -> str:
    """A route as a metric label: segments with a digit (ids, amounts) become ``{}``."""
    return "/".join(
        "{}" if any(c.isdigit() for c in part) and part not in ("v1", "v3") else part
        for part in route.split("/")
    )


class OpexClient:
    """OPEX over HTTP: one instance per process, shared by every task.

    ::

        async with OpexClient(OpexSettings()) as opex:
            ack = await opex.place_order(creds, "BTC_USDT", Side.BUY, OrderType.LIMIT,
                                         Decimal("0.01"), Decimal("30000"), TimeInForce.GTC)
            orders = await opex.open_orders(creds, "BTC_USDT")

    Calls that exist on both surfaces go to ``settings.surface``; `using` gives a view of
    the same client (same connection pool) on the other one. Every failure is an
    `OpexError` (see `shared.opex._errors` for which one means what); the client never
    retries by itself, and never logs a header, a body, a secret or a signature.
    """

    def __init__(
        self,
        settings: OpexSettings | None = None,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        clock: Clock = system_clock,
        surface: Surface | None = None,
    ) -> None:
        self.settings = settings if settings is not None else OpexSettings()
        self.surface: Surface = surface or self.settings.surface
        self._clock = clock
        self._owner = True
        s = self.settings
        limits = httpx.Limits(
            max_connections=s.max_connections,
            max_keepalive_connections=s.max_keepalive_connections,
            keepalive_expiry=s.keepalive_expiry,
        )
        # The lean path: calls sent straight over the pool, past httpx (see `_call`).
        self._lean: LeanTransport | AiohttpTransport | None = None
        if transport is None and s.http_backend == "lean":
            transport = self._lean = LeanTransport(limits)
        elif transport is None and s.http_backend == "aiohttp":
            transport = self._lean = AiohttpTransport(limits)
        self._http = httpx.AsyncClient(
            transport=transport,
            timeout=httpx.Timeout(s.timeout),
            limits=limits,
            http1=True,
            http2=False,
            follow_redirects=False,
            trust_env=False,
        )
        self._bases: dict[Base, str] = {
            "api": s.api_url + s.path_prefix,
            "market": (s.market_url or s.api_url) + s.path_prefix,
            "matching": s.matching_gateway_url or s.api_url,
        }
        self._strips: dict[Base, str] = {
            name: urlsplit(url).path for name, url in self._bases.items()
        }
        self._aliases: dict[str, str] = {}
        self._natives: dict[str, str] = {}
        # The lean path's constants: what httpx would add to every request, and its timeouts.
        self._lean_defaults = {
            name.decode("latin-1"): value.decode("latin-1")
            for name, value in self._http.headers.raw
            if name.lower() != b"accept"
        }
        t = self._http.timeout
        self._lean_timeouts = (t.connect, t.read, t.pool)

    # -- lifecycle ---------------------------------------------------------------------

    async def __aenter__(self) -> OpexClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connection pool (only the client that created it does)."""
        if self._owner:
            await self._http.aclose()

    def using(self, surface: Surface) -> OpexClient:
        """This client on ``surface``, sharing its connection pool and symbol map."""
        view = object.__new__(OpexClient)
        view.__dict__.update(self.__dict__)
        view.surface = surface
        view._owner = False
        return view

    @property
    def admin(self) -> Credentials | None:
        """The admin credential from the settings (``OPEX_API_KEY``), if any."""
        return self.settings.admin_credentials()

    def __repr__(self) -> str:
        return f"OpexClient(api_url={self.settings.api_url!r}, surface={self.surface!r})"

    # -- symbols -----------------------------------------------------------------------

    def native_symbol(self, symbol: str) -> str:
        """OPEX's ``BTC_USDT`` for ``symbol`` in any spelling (``BTCUSDT``, ``btc-usdt``)."""
        known = self._natives.get(symbol.upper())
        if known is not None:
            return known
        if "_" in symbol:
            return symbol.upper()
        return normalize_symbol(symbol)

    def v3_symbol(self, symbol: str) -> str:
        """The ``/v3`` alias of ``symbol``: from ``/v3/exchangeInfo`` once loaded, else
        the native name without its underscore (OPEX's default aliases)."""
        native = self.native_symbol(symbol)
        return self._aliases.get(native, native.replace("_", ""))

    def _symbol_param(self, symbol: str) -> str:
        return self.v3_symbol(symbol) if self.surface == "v3" else self.native_symbol(symbol)

    def _answered_symbol(self, symbol: str) -> str:
        try:
            return self.native_symbol(symbol)
        except ValueError:
            return symbol

    def _learn_symbols(self, info: ExchangeInfo) -> None:
        for item in info.symbols:
            self._aliases[item.native] = item.symbol
            self._natives[item.symbol.upper()] = item.native

    # -- transport ---------------------------------------------------------------------

    async def _call(
        self,
        method: str,
        route: str,
        *,
        base: Base = "api",
        creds: Credentials | None = None,
        params: Sequence[tuple[str, str]] | None = None,
        body: Any = None,
        form: bool = False,
        effect: bool = False,
    ) -> Any:
        """Send one request and return its JSON (`Decimal` numbers), or raise."""
        headers = {"Accept": "application/json"}
        trace = current_traceparent()
        if trace is not None:  # the message being handled: one trace across HTTP too
            headers["traceparent"] = trace
        content: bytes | None = None
        if body is not None:
            content = json.dumps(body, default=_json_default, separators=(",", ":")).encode()
            headers["Content-Type"] = "application/json"
        elif form:
            headers["Content-Type"] = _FORM
        url = self._bases[base] + route
        query = ""
        if params:
            # What httpx does with params=, without parsing the URL twice.
            query = _query(params)
            url += "?" + query
        lean = (
            self._lean is not None
            and _PLAIN_ROUTE.fullmatch(route) is not None
            and not self._http.cookies
        )
        request: httpx.Request | None = None
        if not lean:
            request = self._http.build_request(method, url, content=content, headers=headers)
            if creds is not None:
                OpexAuth(creds, strip_prefix=self._strips[base], clock=self._clock).apply(request)
        elif creds is not None:
            auth = OpexAuth(creds, strip_prefix=self._strips[base], clock=self._clock)
            headers.update(auth.headers(method, self._strips[base] + route, query, content))
        started = time.perf_counter()
        status: int | None = None
        outcome = "ok"
        try:
            if request is None:
                answer = await self._send_lean(method, url, headers, content, route, effect)
                status = answer.status
                if 200 <= status < 300 and answer.header(b"content-encoding") is None:
                    data = answer.content
                    if answer.header(b"set-cookie") is not None:
                        self._http.cookies.extract_cookies(
                            answer.to_httpx(httpx.Request(method, url))
                        )
                else:
                    response = answer.to_httpx(httpx.Request(method, url))
                    self._http.cookies.extract_cookies(response)
                    self._raise_for_status(response, method, route, effect)
                    data = response.content
            else:
                try:
                    response = await self._http.send(request)
                except httpx.TransportError as exc:
                    raise self._transport_error(exc, method, route, effect) from exc
                status = response.status_code
                self._raise_for_status(response, method, route, effect)
                data = response.content
            try:
                return _read_json(data)
            except ValueError as exc:
                raise self._unreadable(method, route, effect, status, "not JSON") from exc
        except BaseException as exc:  # OpexError, or cancellation mid-request
            outcome = type(exc).__name__
            raise
        finally:
            elapsed = time.perf_counter() - started
            _observe(method, route, outcome, elapsed)
            logger, debug = _request_logger()
            if debug or outcome != "ok":
                (logger.debug if outcome == "ok" else logger.info)(
                    "opex.request",
                    method=method,
                    path=route,
                    status=status,
                    duration_ms=round(elapsed * 1000, 1),
                    outcome=outcome,
                )

    async def _send_lean(
        self,
        method: str,
        url: str,
        headers: dict[str, str],
        content: bytes | None,
        route: str,
        effect: bool,
    ) -> RawResponse:
        """The request straight over the pool (`LeanTransport` or `AiohttpTransport`): the
        same headers as the httpx path sends (httpx's default headers, then the call's),
        the same exceptions, a fraction of the CPU (no `httpx.Request` / `httpx.Response`
        for a 2xx answer)."""
        assert self._lean is not None
        # `_call` always sets Accept and never one of httpx's other defaults
        # (Accept-Encoding, Connection, User-Agent): a plain merge is httpx's merge.
        sent = {**self._lean_defaults, **headers}
        try:
            return await self._lean.send(method, url, sent, content, self._lean_timeouts)
        except httpx.TransportError as exc:
            raise self._transport_error(exc, method, route, effect) from exc

    def _transport_error(
        self, exc: httpx.TransportError, method: str, route: str, effect: bool
    ) -> OpexError:
        kind = type(exc).__name__
        if isinstance(exc, _NOT_SENT):
            return OpexUnavailable(f"{kind} before the request was sent", method=method, path=route)
        if effect:
            return OpexAmbiguous(f"{kind} after the request was sent", method=method, path=route)
        return OpexUnavailable(f"{kind}", method=method, path=route)

    def _unreadable(
        self, method: str, route: str, effect: bool, status: int, what: str
    ) -> OpexError:
        text = f"HTTP {status} answer could not be read ({what})"
        if effect:
            return OpexAmbiguous(text, http_status=status, method=method, path=route)
        return OpexUnavailable(text, http_status=status, method=method, path=route)

    def _raise_for_status(
        self, response: httpx.Response, method: str, route: str, effect: bool
    ) -> None:
        status = response.status_code
        if 200 <= status < 300:
            return
        code, name, message = _error_fields(response)
        where: dict[str, Any] = {"method": method, "path": route}
        if status == 429 or code == 1024:
            retry_after = _retry_after(response)
            raise OpexRateLimited(
                float(self.settings.rate_limit_retry_after) if retry_after is None else retry_after,
                code=code if code is not None else 1024,
                http_status=status,
                message=message,
                **where,
            )
        if status in (408, 503):
            raise OpexUnavailable(
                f"HTTP {status}" + (f" {code} {name}" if code is not None else ""),
                http_status=status,
                code=code,
                retry_after_s=_retry_after(response),
                **where,
            )
        if status >= 500:
            text = f"HTTP {status}" + (f" {code} {name}" if code is not None else "")
            if effect:
                raise OpexAmbiguous(text, http_status=status, code=code, **where)
            raise OpexUnavailable(text, http_status=status, code=code, **where)
        refusal: type[OpexRefused] = OpexRefused
        if code == 1025:
            refusal = OpexBadSignature
        elif code == 1026:
            refusal = OpexBadTimestamp
        elif status == 401 or code == 1003:
            refusal = OpexUnauthenticated
        elif code == 1004 or (status == 403 and code is None):
            # A 403 with another code is a business refusal (7006: cancel not allowed).
            refusal = OpexForbidden
        if name is None and code is None:
            name = response.reason_phrase or None
        raise refusal(message, code=code, http_status=status, name=name, **where)

    def _parse(
        self, model: type[M], data: Any, method: str, route: str, effect: bool, **extra: Any
    ) -> M:
        if not isinstance(data, dict):
            raise self._unreadable(
                method, route, effect, 200, f"expected an object for {model.__name__}"
            )
        try:
            return model.model_validate({**data, **extra})
        except ValidationError as exc:
            raise self._unreadable(
                method, route, effect, 200, f"{model.__name__}: {exc.error_count()} field errors"
            ) from None

    def _parse_list(
        self, model: type[M], data: Any, method: str, route: str, **extra: Any
    ) -> list[M]:
        if not isinstance(data, list):
            raise self._unreadable(
                method, route, False, 200, f"expected a list of {model.__name__}"
            )
        return [self._parse(model, item, method, route, False, **extra) for item in data]

    def _v3_auth_params(self, *pairs: tuple[str, str | None]) -> list[tuple[str, str]]:
        params = [(key, value) for key, value in pairs if value is not None]
        params.append(("timestamp", str(self._clock())))
        return params

    # -- orders ------------------------------------------------------------------------

    async def place_order(
        self,
        creds: Credentials,
        symbol: str,
        side: Side | str,
        type: OrderType | str,
        quantity: Decimal | None,
        price: Decimal | None = None,
        time_in_force: TimeInForce | str | None = None,
        stop_price: Decimal | None = None,
        quote_order_qty: Decimal | None = None,
    ) -> OrderAck:
        """Submit an order. OPEX answers before the order reaches its engine and gives no
        id: look for it in `open_orders` / `all_orders`. A timeout or a 5xx raises
        `OpexAmbiguous`: the order may exist; look before sending it again."""
        fields: list[tuple[str, str | None]] = [
            ("symbol", self._symbol_param(symbol)),
            ("side", Side(side).value),
            ("type", OrderType(type).value),
            ("timeInForce", TimeInForce(time_in_force).value if time_in_force else None),
            ("quantity", _dec(quantity) if quantity is not None else None),
            ("quoteOrderQty", _dec(quote_order_qty) if quote_order_qty is not None else None),
            ("price", _dec(price) if price is not None else None),
            ("stopPrice", _dec(stop_price) if stop_price is not None else None),
        ]
        if self.surface == "v3":
            route, params = "/v3/order", self._v3_auth_params(*fields)
        else:
            route, params = "/opex/v1/order", [(k, v) for k, v in fields if v is not None]
        data = await self._call(
            "POST", route, creds=creds, params=params, form=self.surface == "v3", effect=True
        )
        return self._parse(OrderAck, data, "POST", route, True, symbol=self.native_symbol(symbol))

    async def cancel_order(self, creds: Credentials, symbol: str, order_id: int) -> CancelAck:
        """Cancel an order (``DELETE /v3/order`` or ``PUT /opex/v1/order``). OPEX answers
        CANCELED at once and cancels asynchronously; a filled, rejected or expired order
        is refused with 7006."""
        fields = [("symbol", self._symbol_param(symbol)), ("orderId", str(order_id))]
        if self.surface == "v3":
            method, route, params = "DELETE", "/v3/order", self._v3_auth_params(*fields)
        else:
            method, route, params = "PUT", "/opex/v1/order", list(fields)
        data = await self._call(
            method, route, creds=creds, params=params, form=self.surface == "v3", effect=True
        )
        return self._parse(CancelAck, data, method, route, True, symbol=self.native_symbol(symbol))

    async def get_order(self, creds: Credentials, symbol: str, order_id: int) -> Order:
        fields = [("symbol", self._symbol_param(symbol)), ("orderId", str(order_id))]
        if self.surface == "v3":
            route, params = "/v3/order", self._v3_auth_params(*fields)
        else:
            route, params = "/opex/v1/order", list(fields)
        data = await self._call("GET", route, creds=creds, params=params, form=self.surface == "v3")
        return self._parse(Order, data, "GET", route, False, symbol=self.native_symbol(symbol))

    async def open_orders(self, creds: Credentials, symbol: str) -> list[Order]:
        fields = [("symbol", self._symbol_param(symbol))]
        if self.surface == "v3":
            route, params = "/v3/openOrders", self._v3_auth_params(*fields)
        else:
            route, params = "/opex/v1/order/open", list(fields)
        data = await self._call("GET", route, creds=creds, params=params, form=self.surface == "v3")
        return self._parse_list(Order, data, "GET", route, symbol=self.native_symbol(symbol))

    async def all_orders(
        self,
        creds: Credentials,
        symbol: str,
        start_time: Timestamp | None = None,
        end_time: Timestamp | None = None,
        limit: int | None = None,
    ) -> list[Order]:
        """Every order of ``symbol`` (``/v3/allOrders``; there is no native equivalent
        with the same shape, so this always uses ``/v3``, which is not rate-limited)."""
        route = "/v3/allOrders"
        params = self._v3_auth_params(
            ("symbol", self.v3_symbol(symbol)),
            ("startTime", _ms(start_time) if start_time is not None else None),
            ("endTime", _ms(end_time) if end_time is not None else None),
            ("limit", str(limit) if limit is not None else None),
        )
        data = await self._call("GET", route, creds=creds, params=params, form=True)
        return self._parse_list(Order, data, "GET", route, symbol=self.native_symbol(symbol))

    async def my_trades(
        self,
        creds: Credentials,
        symbol: str,
        from_id: int | None = None,
        start_time: Timestamp | None = None,
        end_time: Timestamp | None = None,
        limit: int | None = None,
    ) -> list[Trade]:
        """The user's fills of ``symbol`` (``/v3/myTrades``, always ``/v3``)."""
        route = "/v3/myTrades"
        params = self._v3_auth_params(
            ("symbol", self.v3_symbol(symbol)),
            ("fromId", str(from_id) if from_id is not None else None),
            ("startTime", _ms(start_time) if start_time is not None else None),
            ("endTime", _ms(end_time) if end_time is not None else None),
            ("limit", str(limit) if limit is not None else None),
        )
        data = await self._call("GET", route, creds=creds, params=params, form=True)
        return self._parse_list(Trade, data, "GET", route, symbol=self.native_symbol(symbol))

    # -- wallets -----------------------------------------------------------------------

    async def account(self, creds: Credentials) -> Account:
        """``/v3/account``: trading permissions and every balance."""
        route = "/v3/account"
        data = await self._call("GET", route, creds=creds, params=self._v3_auth_params(), form=True)
        return self._parse(Account, data, "GET", route, False)

    async def wallet_assets(self, creds: Credentials, asset: str | None = None) -> list[Balance]:
        """``/opex/v1/wallet/asset[?symbol]``: balances (rate-limited by OPEX)."""
        route = "/opex/v1/wallet/asset"
        params = [("symbol", asset.upper())] if asset else []
        data = await self._call("GET", route, creds=creds, params=params)
        return self._parse_list(Balance, data, "GET", route)

    async def balances(self, creds: Credentials) -> list[Balance]:
        """The user's balances on the configured surface."""
        if self.surface == "v3":
            return list((await self.account(creds)).balances)
        return await self.wallet_assets(creds)

    # -- market data (public) ----------------------------------------------------------

    def _market_route(self, v3: str, native: str) -> str:
        return v3 if self.surface == "v3" else native

    async def depth(self, symbol: str, limit: int = 100) -> Depth:
        route = self._market_route("/v3/depth", "/opex/v1/market/depth")
        params = [("symbol", self._symbol_param(symbol)), ("limit", str(limit))]
        data = await self._call("GET", route, base="market", params=params)
        return self._parse(Depth, data, "GET", route, False, symbol=self.native_symbol(symbol))

    async def trades(self, symbol: str, limit: int | None = None) -> list[PublicTrade]:
        route = self._market_route("/v3/trades", "/opex/v1/market/trades")
        params = [("symbol", self._symbol_param(symbol))]
        if limit is not None:
            params.append(("limit", str(limit)))
        data = await self._call("GET", route, base="market", params=params)
        return self._parse_list(PublicTrade, data, "GET", route)

    async def ticker_24h(
        self, symbol: str | None = None, window: TickerWindow = "24h"
    ) -> list[Ticker]:
        """Price statistics over ``window`` (OPEX says ``24h``, not Binance's ``24hr``),
        for ``symbol`` or every pair."""
        route = self._market_route(f"/v3/ticker/{window}", f"/opex/v1/market/ticker/{window}")
        params = [("symbol", self._symbol_param(symbol))] if symbol else []
        data = await self._call("GET", route, base="market", params=params)
        tickers = self._parse_list(Ticker, data, "GET", route)
        return [t.model_copy(update={"symbol": self._answered_symbol(t.symbol)}) for t in tickers]

    async def ticker_price(self, symbol: str | None = None) -> list[PriceTicker]:
        route = self._market_route("/v3/ticker/price", "/opex/v1/market/ticker/price")
        params = [("symbol", self._symbol_param(symbol))] if symbol else []
        data = await self._call("GET", route, base="market", params=params)
        prices = self._parse_list(PriceTicker, data, "GET", route)
        return [p.model_copy(update={"symbol": self._answered_symbol(p.symbol)}) for p in prices]

    async def exchange_info(self) -> ExchangeInfo:
        """``/v3/exchangeInfo``: every pair with its ``/v3`` alias and step precisions.
        Also teaches the client the aliases it sends on ``/v3``."""
        route = "/v3/exchangeInfo"
        data = await self._call("GET", route, base="market")
        info = self._parse(ExchangeInfo, data, "GET", route, False)
        self._learn_symbols(info)
        return info

    async def pairs(self, *, with_steps: bool = True) -> list[PairInfo]:
        """``/opex/v1/market/pair``: availability, min/max order value and order types;
        with the price and quantity steps of `exchange_info` when OPEX lists none."""
        route = "/opex/v1/market/pair"
        data = await self._call("GET", route, base="market")
        pairs = [
            p.model_copy(update={"symbol": p.symbol.upper()})
            for p in self._parse_list(PairInfo, data, "GET", route)
        ]
        if not with_steps or all(p.price_step is not None for p in pairs):
            return pairs
        info = await self.exchange_info()
        merged = []
        for pair in pairs:
            symbol_info = info.by_native(pair.symbol)
            if symbol_info is not None and pair.price_step is None:
                pair = pair.model_copy(
                    update={
                        "price_step": symbol_info.price_step,
                        "quantity_step": symbol_info.quantity_step,
                    }
                )
            merged.append(pair)
        return merged

    # -- users -------------------------------------------------------------------------

    async def register(
        self,
        username: str,
        *,
        first_name: str | None = None,
        last_name: str | None = None,
        captcha_code: str = "",
        captcha_type: str = "INTERNAL",
    ) -> Registration:
        """Start a registration (``username`` is an email or a mobile number)."""
        route = "/opex/v1/user/public/register"
        body = {
            "username": username,
            "firstName": first_name,
            "lastName": last_name,
            "captchaType": captcha_type,
            "captchaCode": captcha_code,
        }
        data = await self._call("POST", route, body=body, effect=True)
        if not isinstance(data, dict):
            data = {}
        return Registration.from_opex(data)

    async def verify(self, username: str, otp: str | SecretStr) -> ActionToken:
        """Check the registration OTP; the answer's token confirms the registration."""
        route = "/opex/v1/user/public/register/verify"
        data = await self._call("POST", route, body={"username": username, "otp": otp}, effect=True)
        return self._parse(ActionToken, data, "POST", route, True)

    async def confirm(
        self,
        token: ActionToken | str | SecretStr,
        password: str | SecretStr,
        *,
        client_id: str | None = None,
        client_secret: SecretStr | None = None,
    ) -> Token | None:
        """Finish a registration: OPEX enables the user and creates its wallets. OPEX
        also logs the user in (a `Token`) only when a client secret goes with the client
        id; otherwise it answers an empty 200 and this returns `None`: call `login`."""
        route = "/opex/v1/user/public/register/confirm"
        body = {
            "password": password,
            "token": token.token if isinstance(token, ActionToken) else token,
            "clientId": client_id or self.settings.client_id,
            "clientSecret": client_secret or self.settings.client_secret,
        }
        data = await self._call("POST", route, body=body, effect=True)
        if data is None:
            return None
        if isinstance(data, dict) and isinstance(data.get("token"), dict):
            data = data["token"]
        return self._parse(Token, data, "POST", route, True)

    async def login(
        self,
        username: str,
        password: str | SecretStr,
        *,
        client_id: str | None = None,
        client_secret: SecretStr | None = None,
        captcha_code: str = "",
        captcha_type: str = "INTERNAL",
    ) -> Token:
        """Password login. Raises `OpexRefused` (name ``OTPRequired``) when OPEX asks
        for a second factor instead of answering a token."""
        route = "/opex/v1/oauth/protocol/openid-connect/token"
        body = {
            "username": username,
            "password": password,
            "clientId": client_id or self.settings.client_id,
            "clientSecret": client_secret or self.settings.client_secret,
            "rememberMe": True,
            "captchaType": captcha_type,
            "captchaCode": captcha_code,
        }
        data = await self._call("POST", route, body=body)
        token = data.get("token") if isinstance(data, dict) else None
        if not isinstance(token, dict):
            if isinstance(data, dict) and data.get("otp"):
                raise OpexRefused(
                    "OPEX asks for a one-time password to log in",
                    http_status=200,
                    name="OTPRequired",
                    method="POST",
                    path=route,
                )
            raise self._unreadable("POST", route, False, 200, "no token")
        return self._parse(Token, token, "POST", route, False)

    async def create_api_key(
        self,
        bearer: Bearer,
        label: str,
        *,
        allowed_ips: Sequence[str] | None = None,
        allowed_endpoints: Sequence[str] | None = None,
        api_key_id: str | None = None,
    ) -> ApiKeySecret:
        """A new API key for the token's user (``POST /v1/api-key``); its secret is in
        this answer only. ``allowed_endpoints`` are paths as OPEX signs them
        (``/api/v3/order``)."""
        route = "/v1/api-key"
        body = {
            "apiKeyId": api_key_id,
            "label": label,
            "allowedIps": list(allowed_ips) if allowed_ips is not None else None,
            "allowedEndpoints": list(allowed_endpoints) if allowed_endpoints is not None else None,
        }
        data = await self._call("POST", route, creds=bearer, body=body, effect=True)
        return self._parse(ApiKeySecret, data, "POST", route, True)

    # -- admin -------------------------------------------------------------------------

    async def deposit(
        self,
        admin: Credentials,
        amount: Decimal,
        symbol: str,
        receiver_uuid: str,
        *,
        ref: str | None = None,
        description: str | None = None,
        gateway_uuid: str | None = None,
    ) -> DepositResult:
        """Credit ``amount`` of asset ``symbol`` to a user's wallet (admin role). Not
        idempotent: a timeout raises `OpexAmbiguous`; check the balance, do not resend."""
        route = f"/opex/v1/admin/deposit/manually/{_dec(amount)}_{symbol.upper()}/{receiver_uuid}"
        body = {
            "ref": ref or str(uuid.uuid4()),
            "description": description,
            "attachment": None,
            "gatewayUuid": gateway_uuid or self.settings.deposit_gateway_uuid,
        }
        data = await self._call("POST", route, creds=admin, body=body, effect=True)
        return self._parse(DepositResult, data if data is not None else {}, "POST", route, True)

    async def pair_setting(self, admin: Credentials, symbol: str) -> PairSetting:
        """A pair's setting on the matching gateway (``GET /pair-setting/{pair}``)."""
        native = self.native_symbol(symbol)
        route = f"/pair-setting/{native}"
        data = await self._call("GET", route, base="matching", creds=admin)
        return self._parse(PairSetting, data, "GET", route, False)

    async def update_pair_setting(
        self,
        admin: Credentials,
        symbol: str,
        *,
        is_available: bool,
        min_order: Decimal,
        max_order: Decimal,
        order_types: Sequence[OrderType | str],
    ) -> PairSetting:
        """Open or close a pair and set its order value bounds and types
        (``PUT /pair-setting`` on the matching gateway; the types go out as the engine's
        ``LIMIT_ORDER`` / ``MARKET_ORDER``). New pairs start unavailable."""
        route = "/pair-setting"
        body = {
            "pair": self.native_symbol(symbol),
            "isAvailable": is_available,
            "minOrder": min_order,
            "maxOrder": max_order,
            "orderTypes": _engine_types(order_types),
        }
        data = await self._call("PUT", route, base="matching", creds=admin, body=body, effect=True)
        return self._parse(PairSetting, data, "PUT", route, True)

    # -- health ------------------------------------------------------------------------

    async def health(self, service: Literal["api", "market"] = "api") -> Health:
        """``/actuator/health`` of the API (or market) service; no auth."""
        route = "/actuator/health"
        data = await self._call("GET", route, base=service)
        return self._parse(Health, data, "GET", route, False)
