from __future__ import annotations

from dataclasses import dataclass, field

from services.notifier.adapters.hub import Hub
from services.notifier.domain.protocol import ACCOUNT, ORDERS
from services.notifier.domain.stream import StreamEntry


@dataclass(eq=False)
class Sub:
    user_id: str
    mask: int = ORDERS
    entries: list[int] = field(default_factory=list)
    tickers: list[tuple[str, str]] = field(default_factory=list)
    controls: list[str] = field(default_factory=list)

    def offer(self, entry: StreamEntry) -> None:
        self.entries.append(entry.seq)

    def offer_ticker(self, symbol: str, frame: str) -> None:
        self.tickers.append((symbol, frame))

    def offer_control(self, frame: str) -> None:
        self.controls.append(frame)


def entry(user: str, seq: int) -> StreamEntry:
    return StreamEntry(user, seq, ORDERS, "{}")


async def test_publish_when_two_users_then_each_connection_gets_only_its_users_entries() -> None:
    hub = Hub()
    a1, a2, b = Sub("a"), Sub("a"), Sub("b")
    for sub in (a1, a2, b):
        hub.add(sub)
    await hub.publish([entry("a", 1), entry("b", 1), entry("a", 2), entry("c", 1)])
    assert (a1.entries, a2.entries, b.entries) == ([1, 2], [1, 2], [1])
    assert (len(hub), hub.count("a"), hub.has_user("c")) == (3, 2, False)


async def test_remove_when_last_connection_of_user_then_user_forgotten() -> None:
    hub = Hub()
    a = Sub("a")
    hub.add(a)
    hub.watch(a, ["BTC_USDT"])
    hub.remove(a, ["BTC_USDT"])
    hub.remove(a, ["BTC_USDT"])  # idempotent
    await hub.publish([entry("a", 1)])
    hub.publish_ticker("BTC_USDT", "t")
    assert (len(hub), hub.has_user("a"), a.entries, a.tickers) == (0, False, [], [])


def test_ticker_when_watched_then_latest_on_watch_and_updates_after() -> None:
    hub = Hub()
    early, late = Sub("a"), Sub("b")
    hub.watch(early, ["BTC_USDT"])
    hub.publish_ticker("BTC_USDT", "t1")
    hub.watch(late, ["BTC_USDT", "ETH_USDT"])
    hub.publish_ticker("BTC_USDT", "t2")
    assert early.tickers == [("BTC_USDT", "t1"), ("BTC_USDT", "t2")]
    assert late.tickers == [("BTC_USDT", "t1"), ("BTC_USDT", "t2")]


def test_publish_notice_when_global_then_only_account_subscribers() -> None:
    hub = Hub()
    account, orders_only = Sub("a", mask=ACCOUNT | ORDERS), Sub("b", mask=ORDERS)
    hub.add(account)
    hub.add(orders_only)
    hub.publish_notice("halted")
    assert (account.controls, orders_only.controls) == (["halted"], [])


async def test_publish_when_a_connection_leaves_mid_publish_then_others_still_served() -> None:
    hub = Hub()

    class Leaving(Sub):
        def offer(self, entry: StreamEntry) -> None:
            hub.remove(self)

    leaving, staying = Leaving("a"), Sub("a")
    hub.add(leaving)
    hub.add(staying)
    await hub.publish([entry("a", 1), entry("a", 2)])
    assert staying.entries == [1, 2]
