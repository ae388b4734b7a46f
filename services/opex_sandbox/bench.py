"""The sandbox's benchmarks: `make bench-sandbox` (`python -m services.opex_sandbox.bench`).

1. Matching-engine throughput (`bench_matching`), in process, one core, CPU time.
2. HTTP order placements per second (`bench_http`): the sandbox in a subprocess (uvicorn,
   uvloop, rate limit off, market maker on, listing delay 5 ms), a few users registered, funded
   and given API keys over HTTP, then `POST /v3/order` (signed with the users' API keys) from
   concurrent tasks on one keep-alive HTTP/1.1 pool, on uvloop as the gateway runs (uvicorn's
   default loop), through the suite's OPEX client
   (`shared.opex.OpexClient`) when it is importable, else plain httpx with the same signing
   (`http_orders_per_s`); then the same kind of orders from a minimal keep-alive client whose
   requests are built up front, which measures the sandbox rather than the client
   (`http_server_orders_per_s`). Each bounded by a number of orders and a duration;
   wall-clock orders per second. The engine's audit must be clean afterwards.

The figures are printed and written to `.bench/sandbox.json` (`matching_orders_per_s`,
`http_orders_per_s`, `http_server_orders_per_s`, details).

Matching: a realistic mix on BTC_USDT from 50 funded users: limit orders scattered around a slowly
drifting mid, about 30% of them priced to cross the spread (IOC or GTC), a few MARKET IOC
orders, and cancels of resting orders (about 10% of operations). The operations are generated
up front with a fixed seed; only their execution is timed, in CPU time of this process (so
that other load on the machine distorts the figure less). Returns operations per CPU second.
"""

from __future__ import annotations

import asyncio
import base64
import gc
import hmac
import json
import os
import random
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
from pydantic import SecretStr

from services.opex_sandbox.domain import (
    ManualClock,
    MatchingEngine,
    Order,
    OrderStatus,
    OrderType,
    PairRegistry,
    Side,
    TimeInForce,
    Wallets,
)
from services.opex_sandbox.runtime import tune_gc

SYMBOL = "BTC_USDT"
_Op = tuple[str, Side, OrderType, TimeInForce, Decimal, Decimal | None] | tuple[int]


def _operations(n: int, users: list[str], seed: int) -> list[_Op]:
    rng = random.Random(seed)
    mid = 30_000_00  # in cents
    ops: list[_Op] = []
    for _ in range(n):
        mid += rng.randint(-5, 5)
        r = rng.random()
        user = rng.choice(users)
        qty = Decimal(rng.randint(1, 100)) / 1000
        if r < 0.10:
            ops.append((rng.randint(0, 1 << 30),))
            continue
        side = Side.BUY if rng.random() < 0.5 else Side.SELL
        sign = 1 if side is Side.BUY else -1
        if r < 0.13:
            price = Decimal(mid + sign * 2000) / 100
            ops.append((user, side, OrderType.MARKET, TimeInForce.IOC, qty, price))
        elif r < 0.48:  # crossing: reaches through the best few levels of the other side
            price = Decimal(mid + sign * rng.randint(100, 1000)) / 100
            tif = TimeInForce.IOC if rng.random() < 0.5 else TimeInForce.GTC
            ops.append((user, side, OrderType.LIMIT, tif, qty, price))
        else:  # passive: rests on its own side
            price = Decimal(mid - sign * rng.randint(50, 5000)) / 100
            ops.append((user, side, OrderType.LIMIT, TimeInForce.GTC, qty, price))
    return ops


def _run(n: int, seed: int) -> tuple[float, dict[str, int]]:
    clock = ManualClock()
    wallets = Wallets()
    engine = MatchingEngine(PairRegistry.with_defaults(), wallets, clock)
    users = [f"00000000-0000-0000-0000-{i:012d}" for i in range(50)]
    for u in users:
        wallets.create_user(u)
        wallets.deposit(u, "BTC", Decimal(10) ** 9)
        wallets.deposit(u, "USDT", Decimal(10) ** 13)
    ops = _operations(n, users, seed)
    resting: list[Order] = []
    place = engine.place
    cancel = engine.cancel
    working = {OrderStatus.NEW, OrderStatus.PARTIALLY_FILLED}
    places = crossing = trades = cancels = 0

    # The pre-generated operations are the harness's, not the engine's: keep them out of the
    # cyclic GC's way. Everything the engine allocates while timed is collected, with the
    # thresholds the server runs with (`runtime.tune_gc`).
    gc.collect()
    gc.freeze()
    previous = tune_gc()
    start = time.process_time()
    for op in ops:
        clock.now += 1
        if len(op) == 1:
            if resting:
                i = op[0] % len(resting)
                order = resting[i]
                resting[i] = resting[-1]
                resting.pop()
                if order.status in working:  # else filled meanwhile
                    cancel(order.user, SYMBOL, order.order_id)
                    cancels += 1
            continue
        user, side, otype, tif, qty, price = op
        result = place(user, SYMBOL, side, otype, tif, qty, price)
        places += 1
        if result.trades:
            crossing += 1
            trades += len(result.trades)
        if result.order.status in working:
            resting.append(result.order)
    elapsed = time.process_time() - start
    gc.set_threshold(*previous)
    gc.unfreeze()
    problems = engine.audit()
    assert not problems, problems[:5]
    bids, asks = engine.resting_orders(SYMBOL)
    stats = {
        "places": places,
        "crossing": crossing,
        "trades": trades,
        "cancels": cancels,
        "resting": len(bids) + len(asks),
    }
    return n / elapsed, stats


def bench_matching(n: int = 200_000, seed: int = 7) -> float:
    """Run `n` operations (places and cancels) and return operations per CPU second."""
    return _run(n, seed)[0]


# -- HTTP -----------------------------------------------------------------------------------

SANDBOX_ENV = {
    "SANDBOX_HOST": "127.0.0.1",
    "SANDBOX_RATE_LIMIT_ENABLED": "false",
    "SANDBOX_LISTING_DELAY_MS": "5",
    "SANDBOX_CANCEL_DELAY_MS": "5",
    "SANDBOX_MARKET_MAKER": "true",
    "SANDBOX_MARKET_MAKER_INTERVAL_MS": "500",
    "OPEX_API_KEY": "bench-admin-key",
    "OPEX_API_SECRET": "bench-admin-secret",
}
ADMIN_HEADERS = {"X-API-KEY": "bench-admin-key", "X-API-SECRET": "bench-admin-secret"}
_Plan = list[tuple[Side, Decimal, Decimal]]


@dataclass(frozen=True, slots=True)
class HttpResult:
    orders_per_s: float
    """Through the suite's client (or httpx): what a gateway process can get."""
    placed: int
    failed: int
    seconds: float
    concurrency: int
    client: str
    server_orders_per_s: float
    """Through a minimal keep-alive HTTP/1.1 client: what the sandbox itself can take."""
    server_placed: int
    server_connections: int


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _start_sandbox(port: int) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "services.opex_sandbox"],
        env={**os.environ, **SANDBOX_ENV, "SANDBOX_PORT": str(port)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


async def _wait_healthy(base: str, proc: subprocess.Popen[bytes], timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    async with httpx.AsyncClient(base_url=base, trust_env=False) as http:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"the sandbox exited with {proc.returncode}")
            try:
                if (await http.get("/actuator/health")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.1)
    raise RuntimeError("the sandbox did not become healthy")


def _sign(secret: str, method: str, path: str, query: str, timestamp: int) -> str:
    canonical = f"{method}\n{path}\n{query}\n\n{timestamp}"
    digest = hmac.digest(secret.encode(), canonical.encode(), "sha256")
    return base64.b64encode(digest).decode("ascii")


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """The client's event loop: uvloop when installed, as the gateway has it (uvicorn's
    default loop is uvloop when it is importable), else asyncio's."""
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


def _quiet_client_process() -> None:
    """For the benchmark's own process: no per-request debug log lines from the client."""
    import logging

    import structlog

    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))


def _client_package() -> Any:
    """`shared.opex` when it has a usable `OpexClient`, else None."""
    try:
        import shared.opex as opex
    except ImportError:
        return None
    return opex if hasattr(opex, "OpexClient") else None


async def _setup_users(http: httpx.AsyncClient, users: int) -> list[tuple[str, str]]:
    """Register, fund and key `users` users the way a newcomer would (plain HTTP calls);
    returns their (API key id, secret)s."""
    keys = []
    for i in range(users):
        name = f"bench-{i}-{uuid.uuid4().hex[:8]}@example.com"
        r = await http.post(
            "/opex/v1/user/public/register", json={"username": name, "captchaCode": "-"}
        )
        otp = r.raise_for_status().json()["otp"]
        r = await http.post(
            "/opex/v1/user/public/register/verify", json={"username": name, "otp": otp}
        )
        token = r.raise_for_status().json()["token"]
        r = await http.post(
            "/opex/v1/user/public/register/confirm",
            json={"password": "bench-pw", "token": token, "clientId": "web-app"},
        )
        r.raise_for_status()
        r = await http.post(
            "/opex/v1/oauth/protocol/openid-connect/token",
            json={"username": name, "password": "bench-pw", "clientId": "web-app"},
        )
        access = r.raise_for_status().json()["token"]["access_token"]
        r = await http.post(
            "/v1/api-key", json={"label": "bench"}, headers={"Authorization": f"Bearer {access}"}
        )
        key = r.raise_for_status().json()
        sub = json.loads(base64.urlsafe_b64decode(access.split(".")[1] + "=="))["sub"]
        for amount, asset in (("100000000", "USDT"), ("10000", "BTC")):
            r = await http.post(
                f"/opex/v1/admin/deposit/manually/{amount}_{asset}/{sub}",
                json={"ref": uuid.uuid4().hex, "gatewayUuid": "manually"},
                headers=ADMIN_HEADERS,
            )
            r.raise_for_status()
        keys.append((key["apiKeyId"], key["secret"]))
    return keys


def _plan(n: int, seed: int) -> _Plan:
    """Limit GTC orders around 30,000; about a third cross the spread."""
    rng = random.Random(seed)
    plan: _Plan = []
    for _ in range(n):
        side = Side.BUY if rng.random() < 0.5 else Side.SELL
        sign = 1 if side is Side.BUY else -1
        price = Decimal(30_000_00 + sign * rng.randint(-40, 20) * 10) / 100
        plan.append((side, Decimal(rng.randint(1, 20)) / 1000, price))
    return plan


async def _drive(
    place: Callable[[int, Side, Decimal, Decimal], Awaitable[None]],
    plan: _Plan,
    concurrency: int,
    seconds: float,
) -> tuple[int, int, float]:
    """`concurrency` tasks place the plan's orders until it or the time runs out; a short
    warm-up (not counted) opens the connections. Returns (placed, failed, seconds)."""
    placed = failed = 0
    index = 0
    stop_at = 0.0
    limit = 0

    async def worker() -> None:
        nonlocal placed, failed, index
        while index < limit and time.perf_counter() < stop_at:
            i = index
            index += 1
            side, qty, price = plan[i]
            try:
                await place(i, side, qty, price)
                placed += 1
            except Exception:
                failed += 1

    limit, stop_at = min(len(plan), concurrency * 4), time.perf_counter() + 5
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    placed = failed = 0
    limit = len(plan)
    start = time.perf_counter()
    stop_at = start + seconds
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return placed, failed, time.perf_counter() - start


async def _through_client(
    base: str, keys: list[tuple[str, str]], plan: _Plan, concurrency: int, seconds: float
) -> tuple[int, int, float, str]:
    opex = _client_package()
    if opex is not None:
        settings = opex.OpexSettings(
            api_url=base,
            max_connections=concurrency,
            max_keepalive_connections=concurrency,
            keepalive_expiry=30,
        )
        creds = [opex.ApiKey(k, SecretStr(s)) for k, s in keys]
        async with opex.OpexClient(settings) as client:

            async def place(i: int, side: Side, qty: Decimal, price: Decimal) -> None:
                await client.place_order(
                    creds[i % len(creds)], "BTC_USDT", opex.Side(side.value),
                    opex.OrderType.LIMIT, qty, price, opex.TimeInForce.GTC,
                )  # fmt: skip

            placed, failed, elapsed = await _drive(place, plan, concurrency, seconds)
        backend = getattr(settings, "http_backend", "httpx")  # OPEX_HTTP_BACKEND
        return placed, failed, elapsed, f"shared.opex.OpexClient ({backend})"

    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=base, limits=limits, trust_env=False) as http:

        async def place_httpx(i: int, side: Side, qty: Decimal, price: Decimal) -> None:
            key_id, secret = keys[i % len(keys)]
            ts = int(time.time() * 1000)
            query = (
                f"symbol=BTCUSDT&side={side.value}&type=LIMIT&timeInForce=GTC"
                f"&quantity={qty}&price={price}&timestamp={ts}"
            )
            headers = {
                "Content-Type": "application/x-www-form-urlencoded",
                "X-API-KEY": key_id,
                "X-API-TIMESTAMP": str(ts),
                "X-API-SIGNATURE": _sign(secret, "POST", "/api/v3/order", query, ts),
            }
            (await http.post(f"/v3/order?{query}", headers=headers)).raise_for_status()

        placed, failed, elapsed = await _drive(place_httpx, plan, concurrency, seconds)
    return placed, failed, elapsed, "httpx (own signing)"


async def _raw(
    port: int, keys: list[tuple[str, str]], plan: _Plan, connections: int, seconds: float
) -> tuple[int, float]:
    """The sandbox's own capacity: signed `POST /v3/order` over keep-alive HTTP/1.1
    connections with next to no client-side cost (requests built up front)."""
    ts = int(time.time() * 1000)
    requests = []
    for i, (side, qty, price) in enumerate(plan):
        key_id, secret = keys[i % len(keys)]
        query = (
            f"symbol=BTCUSDT&side={side.value}&type=LIMIT&timeInForce=GTC"
            f"&quantity={qty}&price={price}&timestamp={ts}"
        )
        requests.append(
            (
                f"POST /v3/order?{query} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 0\r\n"
                f"X-API-KEY: {key_id}\r\nX-API-TIMESTAMP: {ts}\r\n"
                f"X-API-SIGNATURE: {_sign(secret, 'POST', '/api/v3/order', query, ts)}\r\n\r\n"
            ).encode()
        )
    placed = 0
    index = 0
    stop_at = time.perf_counter() + seconds

    async def connection() -> None:
        nonlocal placed, index
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while index < len(requests) and time.perf_counter() < stop_at:
                i = index
                index += 1
                writer.write(requests[i])
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line[:15].lower() == b"content-length:":
                        length = int(line[15:])
                await reader.readexactly(length)
                if head.startswith(b"HTTP/1.1 200"):
                    placed += 1
        finally:
            writer.close()

    start = time.perf_counter()
    await asyncio.gather(*(connection() for _ in range(connections)))
    return placed, time.perf_counter() - start


async def _run_http(
    base: str, port: int, n: int, seconds: float, concurrency: int, users: int
) -> HttpResult:
    async with httpx.AsyncClient(base_url=base, trust_env=False) as http:
        keys = await _setup_users(http, users)
    placed, failed, elapsed, client = await _through_client(
        base, keys, _plan(n, 11), concurrency, seconds
    )
    connections = 16
    raw_placed, raw_elapsed = await _raw(port, keys, _plan(n, 12), connections, seconds)
    async with httpx.AsyncClient(base_url=base, trust_env=False) as http:
        await http.post("/sandbox/flush")
        problems = (await http.get("/sandbox/audit")).json()
    if problems:
        raise AssertionError(f"engine audit after the HTTP bench: {problems[:5]}")
    return HttpResult(
        orders_per_s=placed / elapsed,
        placed=placed,
        failed=failed,
        seconds=elapsed,
        concurrency=concurrency,
        client=client,
        server_orders_per_s=raw_placed / raw_elapsed,
        server_placed=raw_placed,
        server_connections=connections,
    )


def bench_http(
    n: int = 20_000, seconds: float = 20.0, *, concurrency: int = 8, users: int = 8
) -> HttpResult:
    """Place up to `n` orders (or for `seconds`), first through the client with
    `concurrency` requests in flight, then through a minimal client, against a sandbox
    subprocess."""
    port = _free_port()
    proc = _start_sandbox(port)
    base = f"http://127.0.0.1:{port}"
    try:
        with asyncio.Runner(loop_factory=_loop_factory()) as runner:
            runner.run(_wait_healthy(base, proc))
            return runner.run(_run_http(base, port, n, seconds, concurrency, users))
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def write_results(results: dict[str, Any], path: Path = Path(".bench/sandbox.json")) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2) + "\n")
    return path


def main() -> None:
    """`python -m services.opex_sandbox.bench [N] [HTTP_N] [HTTP_SECONDS]`."""
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 200_000
    http_n = int(sys.argv[2]) if len(sys.argv) > 2 else 20_000
    http_seconds = float(sys.argv[3]) if len(sys.argv) > 3 else 20.0
    rate, stats = _run(n, 7)
    print(f"{rate:,.0f} orders/s ({n:,} operations: places and cancels, one core, CPU time)")
    print(
        "mix: {places:,} places, {crossing:,} of them traded ({pct:.0f}%), {trades:,} trades, "
        "{cancels:,} cancels, {resting:,} orders resting at the end".format(
            pct=100 * stats["crossing"] / max(stats["places"], 1), **stats
        )
    )
    _quiet_client_process()
    http = bench_http(http_n, http_seconds)
    print(
        f"{http.orders_per_s:,.0f} HTTP order placements/s through {http.client} "
        f"({http.placed:,} placed, {http.failed:,} failed, in {http.seconds:.1f} s; "
        f"{http.concurrency} requests in flight; sandbox in its own process)"
    )
    print(
        f"{http.server_orders_per_s:,.0f} HTTP order placements/s the sandbox takes from a "
        f"minimal keep-alive client ({http.server_placed:,} placed over "
        f"{http.server_connections} connections)"
    )
    path = write_results(
        {
            "matching_orders_per_s": round(rate),
            "http_orders_per_s": round(http.orders_per_s),
            "matching": {"operations": n, **stats},
            "http_server_orders_per_s": round(http.server_orders_per_s),
            "http": {
                "placed": http.placed,
                "failed": http.failed,
                "seconds": round(http.seconds, 3),
                "concurrency": http.concurrency,
                "client": http.client,
                "server_placed": http.server_placed,
                "server_connections": http.server_connections,
            },
        }
    )
    print(f"written to {path}")


if __name__ == "__main__":
    main()
