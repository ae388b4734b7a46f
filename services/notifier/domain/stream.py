"""Each user's stream: a contiguous ``seq`` within an ``epoch``, bounded retention, and
the resume decision (README.md, Resume).

- Seqs are assigned in the transaction that records the events: the user's cursor moves
  from ``last_seq`` to ``last_seq + n`` and the batch's ``n`` events of that user take
  ``last_seq + 1 .. last_seq + n`` in Kafka order (`assign_seqs`).
- ``floor_seq``: every seq up to it has been pruned; ``floor_seq + 1 .. last_seq`` are
  kept. Retention keeps the last `Retention.events` of a user and nothing older than
  `Retention.seconds`.
- The epoch names the stream's history; it changes only when the stream is reset (its
  rows wiped, the database rebuilt). A client holding another epoch cannot resume.
"""

from __future__ import annotations

import enum
import secrets
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from uuid import UUID

from services.notifier.domain.events import GlobalNotice, StreamItem

__all__ = [
    "Cursor",
    "NotRecovered",
    "Record",
    "Recorded",
    "Resume",
    "ResumeDecision",
    "Retention",
    "StreamEntry",
    "assign_seqs",
    "counts_by_user",
    "decide_resume",
    "is_contiguous",
    "new_epoch",
]


def new_epoch() -> str:
    """A fresh epoch: 12 random hex digits."""
    return secrets.token_hex(6)


@dataclass(frozen=True, slots=True)
class Cursor:
    """Where a user's stream stands."""

    epoch: str
    last_seq: int = 0
    floor_seq: int = 0


@dataclass(frozen=True, slots=True)
class StreamEntry:
    """One event of a user's stream with its seq and rendered frame: what the hub pushes
    and what a replay reads back."""

    user_id: str
    seq: int
    channel: int
    frame: str


def counts_by_user(items: Iterable[StreamItem]) -> dict[str, int]:
    """How many events each user gets, users in sorted order (the order their cursors are
    locked in, so two writers never deadlock)."""
    counts: dict[str, int] = {}
    for item in items:
        counts[item.user_id] = counts.get(item.user_id, 0) + 1
    return dict(sorted(counts.items()))


def assign_seqs(
    items: Sequence[StreamItem], last_after: Mapping[str, int]
) -> list[tuple[StreamItem, int]]:
    """Seqs for ``items`` (in Kafka order) given each user's ``last_seq`` after the
    cursor moved by that user's count: contiguous per user, in item order."""
    counts = counts_by_user(items)
    next_seq = {user: last_after[user] - count + 1 for user, count in counts.items()}
    assigned: list[tuple[StreamItem, int]] = []
    for item in items:
        seq = next_seq[item.user_id]
        next_seq[item.user_id] = seq + 1
        assigned.append((item, seq))
    return assigned


class Resume(enum.StrEnum):
    LIVE = "live"
    RECOVERED = "recovered"
    NOT_RECOVERED = "not_recovered"


class NotRecovered(enum.StrEnum):
    EPOCH_CHANGED = "epoch_changed"
    TOO_OLD = "too_old"
    AHEAD = "ahead"


@dataclass(frozen=True, slots=True)
class ResumeDecision:
    """What a subscribing connection gets: frames after ``start_after``; with
    `Resume.RECOVERED` the replay of ``start_after + 1 .. replay_to`` comes first."""

    outcome: Resume
    start_after: int
    replay_to: int = 0
    reason: NotRecovered | None = None


def decide_resume(
    cursor: Cursor, since: int | None, epoch: str | None, *, max_replay: int | None = None
) -> ResumeDecision:
    """Resume from ``since`` (the last seq the client holds) in ``epoch``, or say why
    not. Never a silent gap: a seq the stream no longer holds (or more than
    ``max_replay`` events behind), another epoch, or a seq the stream never reached is
    `Resume.NOT_RECOVERED`, and the client reloads."""
    if since is None:
        return ResumeDecision(Resume.LIVE, cursor.last_seq)
    if epoch != cursor.epoch:
        return ResumeDecision(
            Resume.NOT_RECOVERED, cursor.last_seq, reason=NotRecovered.EPOCH_CHANGED
        )
    if since > cursor.last_seq:
        return ResumeDecision(Resume.NOT_RECOVERED, cursor.last_seq, reason=NotRecovered.AHEAD)
    if since < cursor.floor_seq or (
        max_replay is not None and cursor.last_seq - since > max_replay
    ):
        return ResumeDecision(Resume.NOT_RECOVERED, cursor.last_seq, reason=NotRecovered.TOO_OLD)
    return ResumeDecision(Resume.RECOVERED, since, replay_to=cursor.last_seq)


def is_contiguous(seqs: Sequence[int], after: int, through: int) -> bool:
    """True when ``seqs`` is exactly ``after + 1 .. through``."""
    return len(seqs) == through - after and all(seq == after + 1 + i for i, seq in enumerate(seqs))


@dataclass(frozen=True, slots=True)
class Retention:
    """How much of each stream is kept for resumes."""

    events: int = 1000
    seconds: float = 24 * 3600.0

    def floor_for(self, last_seq: int) -> int:
        """The highest seq the event-count rule prunes."""
        return max(0, last_seq - self.events)


@dataclass(frozen=True, slots=True)
class Record:
    """A message to record, with where it came from (kept in the inbox)."""

    item: StreamItem | GlobalNotice
    topic: str
    partition: int
    offset: int

    @property
    def message_id(self) -> UUID:
        return self.item.message_id


@dataclass
class Recorded:
    """What a `StreamStore.record` committed."""

    entries: list[StreamEntry] = field(default_factory=list)
    """New stream events, in seq order per user."""
    duplicates: list[StreamItem] = field(default_factory=list)
    """User events already recorded (by an earlier delivery or another instance)."""
    notices: list[GlobalNotice] = field(default_factory=list)
    """New global notices."""
