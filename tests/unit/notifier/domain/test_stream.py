from __future__ import annotations

from uuid import uuid4

from hypothesis import given
from hypothesis import strategies as st

from services.notifier.domain.events import StreamItem
from services.notifier.domain.protocol import ORDERS
from services.notifier.domain.stream import (
    Cursor,
    NotRecovered,
    Resume,
    Retention,
    assign_seqs,
    counts_by_user,
    decide_resume,
    is_contiguous,
    new_epoch,
)


def item(user: str) -> StreamItem:
    return StreamItem(user, uuid4(), "order_update", ORDERS, "{}", "2026-01-01T00:00:00.000Z", None)


def test_assign_seqs_when_users_interleave_then_contiguous_per_user_in_order() -> None:
    items = [item("b"), item("a"), item("b"), item("a"), item("b")]
    assigned = assign_seqs(items, {"a": 12, "b": 3})
    assert [(i.user_id, seq) for i, seq in assigned] == [
        ("b", 1),
        ("a", 11),
        ("b", 2),
        ("a", 12),
        ("b", 3),
    ]


def test_counts_by_user_when_any_order_then_users_sorted_for_lock_order() -> None:
    assert list(counts_by_user([item("z"), item("a"), item("m"), item("a")]).items()) == [
        ("a", 2),
        ("m", 1),
        ("z", 1),
    ]


@given(st.lists(st.sampled_from("abcd"), max_size=60), st.integers(0, 1000))
def test_assign_seqs_when_any_batch_then_each_user_gets_the_next_contiguous_run(
    users: list[str], start: int
) -> None:
    items = [item(u) for u in users]
    counts = counts_by_user(items)
    assigned = assign_seqs(items, {u: start + n for u, n in counts.items()})
    for user, n in counts.items():
        seqs = [seq for i, seq in assigned if i.user_id == user]
        assert seqs == list(range(start + 1, start + n + 1))


CURSOR = Cursor("e1", last_seq=50, floor_seq=20)


def test_decide_resume_when_no_since_then_live_from_last() -> None:
    decision = decide_resume(CURSOR, None, None)
    assert (decision.outcome, decision.start_after) == (Resume.LIVE, 50)


def test_decide_resume_when_since_retained_then_recovered_replay_range() -> None:
    decision = decide_resume(CURSOR, 20, "e1")
    assert (decision.outcome, decision.start_after, decision.replay_to) == (
        Resume.RECOVERED,
        20,
        50,
    )
    assert decide_resume(CURSOR, 50, "e1").outcome is Resume.RECOVERED  # nothing missed


def test_decide_resume_when_epoch_differs_then_not_recovered() -> None:
    decision = decide_resume(CURSOR, 30, "other")
    assert (decision.outcome, decision.reason) == (Resume.NOT_RECOVERED, NotRecovered.EPOCH_CHANGED)
    assert decision.start_after == 50


def test_decide_resume_when_pruned_then_not_recovered_too_old() -> None:
    decision = decide_resume(CURSOR, 19, "e1")
    assert (decision.outcome, decision.reason) == (Resume.NOT_RECOVERED, NotRecovered.TOO_OLD)


def test_decide_resume_when_more_than_max_replay_behind_then_too_old() -> None:
    decision = decide_resume(CURSOR, 25, "e1", max_replay=10)
    assert decision.reason is NotRecovered.TOO_OLD


def test_decide_resume_when_client_is_ahead_then_not_recovered() -> None:
    decision = decide_resume(CURSOR, 51, "e1")
    assert (decision.outcome, decision.reason) == (Resume.NOT_RECOVERED, NotRecovered.AHEAD)


@given(
    st.integers(0, 100),
    st.integers(0, 100),
    st.integers(0, 120),
    st.booleans(),
)
def test_decide_resume_when_any_position_then_never_a_silent_gap(
    floor: int, extra: int, since: int, same_epoch: bool
) -> None:
    cursor = Cursor("e", last_seq=floor + extra, floor_seq=floor)
    decision = decide_resume(cursor, since, "e" if same_epoch else "x")
    if decision.outcome is Resume.RECOVERED:
        # every seq after `since` up to the last is still held
        assert cursor.floor_seq <= decision.start_after == since <= cursor.last_seq
        assert decision.replay_to == cursor.last_seq
    else:
        assert decision.start_after == cursor.last_seq


def test_is_contiguous_when_holes_or_extras_then_false() -> None:
    assert is_contiguous([4, 5, 6], 3, 6)
    assert is_contiguous([], 6, 6)
    assert not is_contiguous([4, 6], 3, 6)
    assert not is_contiguous([5, 6], 3, 6)
    assert not is_contiguous([4, 5, 6, 7], 3, 6)


def test_retention_floor_when_more_than_kept_then_older_go() -> None:
    assert Retention(events=100).floor_for(250) == 150
    assert Retention(events=100).floor_for(40) == 0


def test_new_epoch_when_called_then_distinct_short_tokens() -> None:
    epochs = {new_epoch() for _ in range(50)}
    assert len(epochs) == 50
    assert all(len(e) == 12 for e in epochs)
