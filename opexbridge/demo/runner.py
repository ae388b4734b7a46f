"""The demo against a running suite: register and fund the demo users, then publish the
script and the stream, while a terminal view shows the pipeline.

Steps, each bounded in time (a step that times out is said on screen, and the demo goes
on rather than hanging):

1. read the suite's topics from their end (``market.instruments`` from its beginning);
2. publish ``UserRegistered`` for each demo user and wait for ``UserProvisioned``;
3. fund each user on OPEX (admin deposit, ``shared.opex``), then make sure the risk
   engine learns the balances: a ``BalancesUpdated`` from the gateway (source ``opex``)
   is waited for a few seconds; when none comes (the committed gateway publishes
   balances only for users whose orders filled or finished), the demo reads the
   user's balances from OPEX with the user's own key (``shared.credentials``, as the
   gateway does) and publishes that snapshot itself;
4. wait for instruments and a ticker of each symbol, and for the risk engine's consumer
   groups to have committed past the users', balances' and tickers' records, so the
   first order is decided on what the demo just set up;
5. publish the script (`scenario.full_script`), each user's next step once the
   previous one settled, then check every scripted command's outcome;
6. keep a slow stream of orders going (`scenario.Stream`) until stopped or
   ``duration`` ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import jwt
from aiokafka import AIOKafkaProducer, TopicPartition
from rich.console import Console
from rich.live import Live
from sqlalchemy.ext.asyncio import create_async_engine

from opexbridge._kafka import (
    admin_client,
    full_topic,
    partition_counts,
    prefix_or_env,
    raw_consumer,
)
from opexbridge.demo.scenario import (
    DEFAULT_FUNDING,
    DemoUser,
    Market,
    Step,
    Stream,
    demo_users,
    full_script,
)
from opexbridge.demo.view import FlowView
from shared.contracts import (
    Balance,
    BalanceSource,
    BalancesUpdated,
    ContractError,
    Envelope,
    InstrumentUpdated,
    TickerUpdated,
    UserProvisioned,
    UserProvisioningFailed,
    UserRegistered,
    decode,
    encode,
    new_message,
    partition_key,
)
from shared.credentials import DEFAULT_SCHEMA, CredentialStore, SecretBox
from shared.messaging import KafkaSettings
from shared.messaging._outbox import message_headers
from shared.opex import OpexClient, OpexSettings

__all__ = ["DemoOptions", "DemoResult", "run_demo", "user_token"]

WATCHED = (
    "users.events",
    "orders.commands",
    "orders.approved",
    "orders.events",
    "positions.events",
    "accounts.events",
    "market.tickers",
    "market.instruments",
)


@dataclass
class DemoOptions:
    users: int = 4
    run_id: str = field(default_factory=lambda: secrets.token_hex(3))
    prefix: str | None = None
    pace_s: float = 0.35
    """Pause between two scripted commands."""
    stream_every_s: float = 2.0
    duration_s: float | None = None
    """How long the stream runs after the script; None: until stopped, 0: no stream."""
    settle_timeout_s: float = 15.0
    ready_timeout_s: float = 90.0
    balances_grace_s: float = 3.0
    """How long the gateway is given to publish a funded user's balances."""
    funding: dict[str, Decimal] = field(default_factory=lambda: dict(DEFAULT_FUNDING))
    notifier_url: str = "http://127.0.0.1:8000"
    risk_group: str = "risk_engine"
    risk_market_group: str = "risk_engine-market-0"
    credentials_schema: str = DEFAULT_SCHEMA
    jwt_secret: str | None = None
    jwt_audience: str | None = None
    jwt_issuer: str | None = None
    token_ttl_s: int = 12 * 3600


@dataclass
class DemoResult:
    users: list[DemoUser]
    steps: list[Step]
    outcomes: list[str]
    page_url: str | None
    notes: list[str]

    @property
    def mismatches(self) -> list[tuple[Step, str]]:
        return [(s, o) for s, o in zip(self.steps, self.outcomes, strict=True) if o != s.expect]


def user_token(user_id: str, options: DemoOptions, now: float | None = None) -> str | None:
    """An HS256 token the notifier accepts for ``user_id`` (None without a secret)."""
    if not options.jwt_secret:
        return None
    issued = int(now if now is not None else time.time())
    claims: dict[str, Any] = {"sub": user_id, "iat": issued, "exp": issued + options.token_ttl_s}
    if options.jwt_audience:
        claims["aud"] = options.jwt_audience
    if options.jwt_issuer:
        claims["iss"] = options.jwt_issuer
    return jwt.encode(claims, options.jwt_secret, algorithm="HS256")


@dataclass
class _Seen:
    topic: str
    envelope: Envelope[Any]
    partition: int
    offset: int


Predicate = Callable[[_Seen], bool]


class Bus:
    """One consumer over the watched topics: feeds the view and wakes waiters."""

    def __init__(self, kafka: KafkaSettings, prefix: str, view: FlowView) -> None:
        self.kafka = kafka
        self.prefix = prefix
        self.view = view
        self.history: deque[_Seen] = deque(maxlen=20_000)
        self.instruments: dict[str, InstrumentUpdated] = {}
        self.tickers: dict[str, tuple[TickerUpdated, _Seen]] = {}
        self._waiters: list[tuple[Predicate, asyncio.Future[_Seen]]] = []
        self._task: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()
        self.on_lines: Callable[[list[str]], None] = lambda _lines: None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run())
        await asyncio.wait_for(self._ready.wait(), 30)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def market(self, symbol: str) -> Market | None:
        instrument = self.instruments.get(symbol)
        seen = self.tickers.get(symbol)
        if instrument is None or seen is None:
            return None
        ticker = seen[0]
        if ticker.last_price is None and ticker.bid_price is None and ticker.ask_price is None:
            return None
        return Market(
            symbol,
            instrument.price_step,
            instrument.quantity_step,
            ticker.bid_price,
            ticker.ask_price,
            ticker.last_price,
            instrument.max_order_value,
        )

    async def wait_for(self, predicate: Predicate, timeout: float) -> _Seen | None:
        for seen in list(self.history):
            if predicate(seen):
                return seen
        future: asyncio.Future[_Seen] = asyncio.get_running_loop().create_future()
        self._waiters.append((predicate, future))
        try:
            return await asyncio.wait_for(future, timeout)
        except TimeoutError:
            return None
        finally:
            self._waiters = [(p, f) for p, f in self._waiters if f is not future]

    async def _run(self) -> None:
        names = [full_topic(t, self.prefix) for t in WATCHED]
        counts = await partition_counts(self.kafka, names)
        missing = [n for n in names if n not in counts]
        if missing:
            raise LookupError(f"topics missing (run `opexbridge topics apply`): {missing}")
        tps = [TopicPartition(n, p) for n in names for p in range(counts[n])]
        async with raw_consumer(self.kafka, isolation_level="read_committed") as consumer:
            consumer.assign(tps)
            ends = await consumer.end_offsets(tps)
            instruments = full_topic("market.instruments", self.prefix)
            for tp in tps:
                if tp.topic == instruments:
                    await consumer.seek_to_beginning(tp)
                else:
                    consumer.seek(tp, ends[tp])
            self._ready.set()
            while True:
                batch = await consumer.getmany(timeout_ms=200)
                for records in batch.values():
                    for record in records:
                        self._take(record.topic, record.partition, record.offset, record.value)

    def _take(self, topic: str, partition: int, offset: int, value: bytes | None) -> None:
        short = topic.removeprefix(self.prefix)
        try:
            envelope = decode(value or b"", topic=short)
        except ContractError:
            return
        seen = _Seen(short, envelope, partition, offset)
        data = envelope.data
        if isinstance(data, InstrumentUpdated):
            self.instruments[data.symbol] = data
        elif isinstance(data, TickerUpdated):
            self.tickers[data.symbol] = (data, seen)
        else:
            self.history.append(seen)
        lines = self.view.apply(short, envelope)
        if lines:
            self.on_lines(lines)
        for predicate, future in list(self._waiters):
            if not future.done() and predicate(seen):
                future.set_result(seen)


def _same_id(envelope: Envelope[Any]) -> Predicate:
    return lambda seen: seen.envelope.id == envelope.id


class Demo:
    def __init__(
        self,
        kafka: KafkaSettings,
        opex: OpexSettings,
        database_url: str,
        options: DemoOptions,
        view: FlowView,
    ) -> None:
        self.kafka = kafka
        self.opex_settings = opex
        self.database_url = database_url
        self.options = options
        self.prefix = prefix_or_env(options.prefix)
        self.view = view
        self.bus = Bus(kafka, self.prefix, view)
        self.producer = AIOKafkaProducer(
            **kafka.aiokafka_kwargs(),
            acks="all",
            enable_idempotence=True,
            client_id="opexbridge-demo",
        )
        self.users = demo_users(options.run_id, options.users)
        for user in self.users:
            view.names[user.user_id] = user.name
        self.status = "starting"
        self.on_note: Callable[[str], None] = lambda _text: None

    def note(self, text: str) -> None:
        self.view.notes.append(text)
        self.on_note(text)

    async def send(self, envelope: Envelope[Any]) -> None:
        headers = [(k, v.encode()) for k, v in message_headers(envelope).items()]
        await self.producer.send_and_wait(
            full_topic(envelope.topic.value, self.prefix),
            encode(envelope),
            key=partition_key(envelope),
            headers=headers,
        )

    # ------------------------------------------------------------------ set-up

    async def provision(self) -> dict[str, _Seen]:
        self.status = "registering the demo users (UserRegistered → user_sync → OPEX)"
        for user in self.users:
            await self.send(new_message(UserRegistered(email=user.email), user_id=user.user_id))

        async def provisioned(user: DemoUser) -> tuple[str, _Seen | None]:
            seen = await self.bus.wait_for(
                lambda s: (
                    s.envelope.user_id == user.user_id
                    and isinstance(s.envelope.data, UserProvisioned | UserProvisioningFailed)
                ),
                self.options.ready_timeout_s,
            )
            return user.user_id, seen

        found: dict[str, _Seen] = {}
        for user_id, seen in await asyncio.gather(*(provisioned(u) for u in self.users)):
            if seen is None:
                raise RuntimeError(f"{user_id} was not provisioned in time: is user_sync running?")
            if isinstance(seen.envelope.data, UserProvisioningFailed):
                raise RuntimeError(f"{user_id}: provisioning failed: {seen.envelope.data.reason}")
            found[user_id] = seen
        return found

    async def fund(self, provisioned: dict[str, _Seen]) -> list[_Seen]:
        self.status = "funding the demo users on OPEX (admin deposit)"
        started = time.time()
        async with OpexClient(self.opex_settings) as opex:
            admin = opex.admin
            if admin is None:
                raise RuntimeError("no OPEX admin credential (OPEX_API_KEY / OPEX_API_SECRET)")
            for user in self.users:
                data = provisioned[user.user_id].envelope.data
                assert isinstance(data, UserProvisioned)
                for asset, amount in self.options.funding.items():
                    await opex.deposit(
                        admin, amount, asset, str(data.opex_user_id), description="opex-bridge demo"
                    )
            self.status = "waiting for the funded balances on accounts.events"
            usdt = self.options.funding.get("USDT", Decimal(0))

            def funded(user_id: str) -> Predicate:
                def check(s: _Seen) -> bool:
                    data = s.envelope.data
                    return (
                        s.envelope.user_id == user_id
                        and isinstance(data, BalancesUpdated)
                        and data.source is BalanceSource.OPEX
                        and s.envelope.occurred_at.timestamp() >= started - 1
                        and any(
                            b.asset == "USDT" and b.free + b.locked >= usdt for b in data.balances
                        )
                    )

                return check

            results = await asyncio.gather(
                *(
                    self.bus.wait_for(funded(u.user_id), self.options.balances_grace_s)
                    for u in self.users
                )
            )
            late = [u for u, seen in zip(self.users, results, strict=True) if seen is None]
            out = [seen for seen in results if seen is not None]
            if late:
                self.note(
                    f"the gateway published no balances for {len(late)} newly funded user(s) "
                    "within {:g}s: the demo read them from OPEX and published them".format(
                        self.options.balances_grace_s
                    )
                )
                out.extend(await self._publish_balances(opex, late))
        return out

    async def _publish_balances(self, opex: OpexClient, users: Sequence[DemoUser]) -> list[_Seen]:
        engine = create_async_engine(self.database_url)
        try:
            store = CredentialStore(
                engine, SecretBox.from_settings(), schema=self.options.credentials_schema, cache_s=0
            )
            sent: list[Envelope[Any]] = []
            for user in users:
                creds = await store.get(user.user_id)
                if creds is None:
                    raise RuntimeError(f"no OPEX credentials stored for {user.user_id}")
                account = await opex.account(creds.api_key)
                balances = tuple(
                    sorted(
                        (
                            Balance(asset=b.asset.upper(), free=b.free, locked=b.locked)
                            for b in account.balances
                        ),
                        key=lambda b: b.asset,
                    )
                )
                envelope = new_message(
                    BalancesUpdated(balances=balances, source=BalanceSource.OPEX),
                    user_id=user.user_id,
                )
                await self.send(envelope)
                sent.append(envelope)
        finally:
            await engine.dispose()
        found = []
        for envelope in sent:
            seen = await self.bus.wait_for(_same_id(envelope), 15)
            if seen is not None:
                found.append(seen)
        return found

    async def market_ready(self) -> list[_Seen]:
        self.status = "waiting for instruments and tickers (order_gateway → market.*)"
        deadline = time.monotonic() + self.options.ready_timeout_s
        symbols = sorted({u.symbol for u in self.users})
        started = time.time()
        while time.monotonic() < deadline:
            fresh = [
                self.bus.tickers[s][1]
                for s in symbols
                if s in self.bus.tickers
                and self.bus.tickers[s][0].at.timestamp() >= started
                and self.bus.market(s) is not None
            ]
            if len(fresh) == len(symbols):
                return fresh
            await asyncio.sleep(0.2)
        raise RuntimeError(
            f"no instruments or tickers for {symbols}: is the order gateway running?"
        )

    async def risk_caught_up(self, group: str, records: Sequence[_Seen]) -> bool:
        """Whether ``group`` committed past every one of ``records`` (waits)."""
        wanted = {
            TopicPartition(full_topic(s.topic, self.prefix), s.partition): s.offset for s in records
        }
        deadline = time.monotonic() + self.options.ready_timeout_s / 3
        async with admin_client(self.kafka) as admin:
            while time.monotonic() < deadline:
                try:
                    committed = await admin.list_consumer_group_offsets(group)
                except Exception:  # the group may not exist yet
                    committed = {}
                if all(
                    tp in committed and committed[tp].offset > offset
                    for tp, offset in wanted.items()
                ):
                    return True
                await asyncio.sleep(0.2)
        return False

    # ---------------------------------------------------------------- trading

    async def _settled(self, sent: Sequence[str]) -> None:
        deadline = time.monotonic() + self.options.settle_timeout_s
        while time.monotonic() < deadline:
            rows = [self.view.rows.get(key) for key in sent]
            if all(r is not None and r.settled for r in rows):
                return
            await asyncio.sleep(0.05)

    async def run_script(self) -> tuple[list[Step], list[str]]:
        steps = full_script(self.users, self.options.run_id)
        sent: list[str] = []
        for number, step in enumerate(steps, 1):
            self.status = f"script {number}/{len(steps)}: {step.user.name}: {step.label}"
            mine = [k for k, s in zip(sent, steps, strict=False) if s.user is step.user]
            await self._settled(mine)
            market = self.bus.market(step.user.symbol)
            if market is None:
                raise RuntimeError(f"no market for {step.user.symbol}")
            envelope = new_message(step.command(market), user_id=step.user.user_id)
            await self.send(envelope)
            sent.append(str(envelope.id))
            await asyncio.sleep(self.options.pace_s)
        self.status = "script sent: waiting for every outcome"
        deadline = time.monotonic() + self.options.settle_timeout_s * 2
        outcomes: list[str] = []
        while time.monotonic() < deadline:
            outcomes = [self._outcome(key) for key in sent]
            if all(o == s.expect for o, s in zip(outcomes, steps, strict=True)):
                break
            await asyncio.sleep(0.2)
        return steps, outcomes

    def _outcome(self, key: str) -> str:
        row = self.view.rows.get(key)
        return row.outcome if row is not None else "not seen"

    async def run_stream(self, duration_s: float | None) -> None:
        stream = Stream(self.users, self.options.run_id)
        ends = None if duration_s is None else time.monotonic() + duration_s
        while ends is None or time.monotonic() < ends:
            picked = stream.next(self.bus.market, self.view.open_orders, self.view.position)
            if picked is not None:
                user, label, command = picked
                self.status = f"stream: {user.name}: {label}"
                await self.send(new_message(command, user_id=user.user_id))
            await asyncio.sleep(self.options.stream_every_s)


async def run_demo(
    kafka: KafkaSettings,
    opex: OpexSettings,
    database_url: str,
    options: DemoOptions,
    *,
    console: Console | None = None,
    live: bool | None = None,
) -> DemoResult:
    """The whole demo (see the module's docstring); the view on ``console`` (a live table
    on a terminal, one line per message otherwise)."""
    console = console or Console()
    live = console.is_terminal if live is None else live
    view = FlowView(max_rows=max(8, min(24, console.size.height - 22)))
    demo = Demo(kafka, opex, database_url, options, view)
    names = {u.user_id: u.name for u in demo.users}
    first = demo.users[0]
    token = user_token(first.user_id, options)
    page = f"{options.notifier_url.rstrip('/')}/demo#token={token}" if token else None

    def header() -> str:
        url = f"[bold]{page}[/]" if page else "(no JWT secret: the page needs a token)"
        return (
            f"[bold]opex-bridge demo[/] run {options.run_id} · users "
            f"{', '.join(names.values())} · {first.name}'s live page: {url}\n"
            f"[dim]{demo.status}[/]"
        )

    if not live:

        def print_lines(lines: list[str]) -> None:
            for line in lines:
                console.print(line, highlight=False, soft_wrap=True)

        demo.bus.on_lines = print_lines
        demo.on_note = lambda text: console.print(f"note: {text}", highlight=False, soft_wrap=True)

    async def body() -> DemoResult:
        await demo.producer.start()
        await demo.bus.start()
        try:
            provisioned = await demo.provision()
            balances = await demo.fund(provisioned)
            tickers = await demo.market_ready()
            demo.status = "waiting for the risk engine to read users, balances and tickers"
            ok = await demo.risk_caught_up(
                options.risk_group, [*provisioned.values(), *balances]
            ) and await demo.risk_caught_up(options.risk_market_group, tickers)
            if not ok:
                demo.note("the risk engine's groups did not catch up in time: going on anyway")
            if not live:
                console.print(header(), highlight=False, soft_wrap=True)
            steps, outcomes = await demo.run_script()
            result = DemoResult(demo.users, steps, outcomes, page, view.notes)
            wrong = result.mismatches
            demo.note(
                f"script: {len(steps) - len(wrong)}/{len(steps)} commands ended as expected"
                + "".join(
                    f"; {s.user.name} {s.label}: {o} (expected {s.expect})" for s, o in wrong[:3]
                )
            )
            if options.duration_s != 0:
                await demo.run_stream(options.duration_s)
            return result
        finally:
            await demo.bus.stop()
            await demo.producer.stop()

    if not live:
        return await body()
    with Live(view.render(header()), console=console, auto_refresh=False) as screen:
        task = asyncio.create_task(body())
        try:
            while not task.done():
                screen.update(view.render(header()), refresh=True)
                await asyncio.wait({task}, timeout=0.25)
        finally:
            if not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            screen.update(view.render(header()), refresh=True)
        return task.result()
