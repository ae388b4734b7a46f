"""`ProvisioningStore`: every read and write of user_sync's tables.

Each worker transition is one transaction that updates the user's row only while this
process holds its lease at the revision it read (so a process that lost the user to
another one cannot overwrite it), writes the encrypted credentials, and stages the
outcome (UserProvisioned, or UserProvisioningFailed plus the original UserRegistered for
``users.events.dlq``) in the outbox, so the outcome is published if and only if the
state it announces is committed.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import UUID, uuid4

import sqlalchemy as sa
import structlog
from pydantic import SecretStr, ValidationError
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from services.user_sync.adapters.tables import credentials, provisioning
from services.user_sync.domain.provisioning import (
    Decision,
    Origin,
    Outcome,
    Provisioning,
    Step,
)
from services.user_sync.domain.registration import Existing, NewUser, Recorded, SourceMessage
from shared.contracts import Envelope, ProvisioningFailureReason, Wallet
from shared.credentials import SecretBox
from shared.db import Database
from shared.messaging import DLQ_HEADERS, dlq_topic, outbox_table, stage
from shared.observability.metrics import DLQ_WRITES
from shared.opex import ApiKey

__all__ = ["ProvisioningStore", "StoredUser", "dead_letter_headers"]

log = structlog.get_logger(__name__)

_LEASE = sa.text("interval '1 second'")

# The worker's statements, as plain SQL: they run several times per user, and building
# and caching SQLAlchemy constructs each time costs more than the round trip.
_CLAIM = sa.text(
    """
    WITH due AS (
        SELECT user_id FROM provisioning
        WHERE step NOT IN ('PROVISIONED', 'FAILED')
          AND next_attempt_at <= now()
          AND (lease_until IS NULL OR lease_until < now())
        ORDER BY next_attempt_at
        LIMIT :n
        FOR UPDATE SKIP LOCKED
    )
    UPDATE provisioning AS p
    SET lease_owner = :owner,
        lease_until = now() + make_interval(secs => CAST(:lease_s AS double precision))
    FROM due LEFT JOIN opex_credentials AS c ON c.user_id = due.user_id
    WHERE p.user_id = due.user_id
    RETURNING p.user_id, p.email, p.first_name, p.last_name, p.step, p.failed_at_step,
        p.attempts, p.opex_user_id, p.adopted, p.pending_enc, p.planned_key_id,
        p.abandoned_key_ids, p.wallets, p.failure_reason, p.last_error_code, p.last_error,
        p.revision, p.message_id, p.correlation_id,
        c.password_enc, c.api_key, c.secret_enc
    """
)

_SAVE = sa.text(
    """
    UPDATE provisioning SET
        step = :step,
        failed_at_step = :failed_at_step,
        attempts = :attempts,
        opex_user_id = :opex_user_id,
        adopted = :adopted,
        pending_enc = :pending_enc,
        planned_key_id = :planned_key_id,
        abandoned_key_ids = CAST(:abandoned_key_ids AS varchar(128)[]),
        wallets = CAST(:wallets AS jsonb),
        failure_reason = :failure_reason,
        last_error_code = :last_error_code,
        last_error = :last_error,
        updated_at = now(),
        revision = revision + 1,
        lease_owner = CASE WHEN CAST(:keep_lease AS boolean) THEN lease_owner END,
        lease_until = CASE WHEN CAST(:keep_lease AS boolean)
            THEN now() + make_interval(secs => CAST(:lease_s AS double precision)) END,
        next_attempt_at = CASE WHEN CAST(:delay_s AS double precision) IS NULL
            THEN next_attempt_at
            ELSE now() + make_interval(secs => CAST(:delay_s AS double precision)) END,
        provisioned_at = CASE WHEN CAST(:provisioned AS boolean)
            THEN now() ELSE provisioned_at END,
        verified_at = CASE WHEN CAST(:provisioned AS boolean) THEN now() ELSE verified_at END
    WHERE user_id = :user_id AND lease_owner = :owner AND revision = :revision
    RETURNING revision
    """
)

_WRITE_CREDENTIALS = sa.text(
    """
    INSERT INTO opex_credentials
        (user_id, opex_user_id, api_key, secret_enc, password_enc, key_version)
    VALUES (:user_id, :opex_user_id, :api_key, :secret_enc, :password_enc, :key_version)
    ON CONFLICT (user_id) DO UPDATE SET
        opex_user_id = EXCLUDED.opex_user_id,
        api_key = EXCLUDED.api_key,
        secret_enc = EXCLUDED.secret_enc,
        password_enc = EXCLUDED.password_enc,
        key_version = EXCLUDED.key_version,
        updated_at = now()
    """
)


def _seconds(value: float) -> sa.ColumnElement[Any]:
    return sa.func.now() + sa.literal(float(value)) * _LEASE


@dataclass(frozen=True, slots=True)
class StoredUser:
    """A user's row as the ops tools show it (no secret)."""

    user_id: str
    step: Step
    attempts: int
    opex_user_id: UUID | None
    failed_at: Step | None
    failure_reason: str | None
    last_error_code: str | None
    last_error: str | None
    abandoned_key_ids: tuple[str, ...]


def _wallets(raw: Any) -> tuple[Wallet, ...]:
    if not isinstance(raw, list):
        return ()
    wallets = []
    for item in raw:
        try:
            wallets.append(Wallet.model_validate(item))
        except ValidationError:
            continue
    return tuple(wallets)


def _headers(raw: Any) -> dict[str, str]:
    return {str(k): str(v) for k, v in raw.items()} if isinstance(raw, dict) else {}


def dead_letter_headers(
    source: SourceMessage | None,
    *,
    code: str,
    error: str,
    attempts: int,
    service: str,
) -> dict[str, str]:
    """The headers `shared.messaging.DeadLetters` writes, for a dead letter staged in the
    outbox (the original headers first)."""
    headers = dict(source.headers) if source is not None else {}
    headers.update(
        {
            DLQ_HEADERS.ERROR: error[:2000],
            DLQ_HEADERS.ERROR_CODE: code,
            DLQ_HEADERS.SERVICE: service,
            DLQ_HEADERS.ATTEMPTS: str(attempts),
            DLQ_HEADERS.FAILED_AT: datetime.now(UTC).isoformat(timespec="milliseconds"),
        }
    )
    if source is not None:
        headers.update(
            {
                DLQ_HEADERS.TOPIC: source.topic,
                DLQ_HEADERS.PARTITION: str(source.partition),
                DLQ_HEADERS.OFFSET: str(source.offset),
            }
        )
    return headers


class ProvisioningStore:
    """user_sync's database: provisioning rows, credentials, and the outbox rows of their
    outcomes. ``owner`` names this process's leases (its instance id)."""

    def __init__(
        self,
        db: Database,
        box: SecretBox,
        *,
        owner: str,
        lease_s: float = 120.0,
        topic_prefix: str = "",
        service: str = "user_sync",
    ) -> None:
        self.db = db
        self._box = box
        self.owner = owner
        self._lease_s = lease_s
        self._prefix = topic_prefix
        self._service = service

    # -- the consumer's side (inside the Consumer's transaction) -------------------------

    async def record(self, session: AsyncSession, users: Sequence[NewUser]) -> Recorded:
        """Insert a row (step NEW, due now) for each user not known yet. A user already
        known is a duplicate; an email another user already has is refused."""
        result = Recorded()
        if not users:
            return result
        rows: list[dict[str, Any]] = []
        for user in users:
            source = user.source
            rows.append(
                {
                    "user_id": user.user_id,
                    "email": user.email,
                    "first_name": user.first_name,
                    "last_name": user.last_name,
                    "step": Step.NEW.value,
                    "attempts": 0,
                    "auto_retries": 0,
                    "adopted": False,
                    "abandoned_key_ids": [],
                    "wallets": [],
                    "revision": 0,
                    "message_id": user.origin.message_id,
                    "correlation_id": user.origin.correlation_id,
                    "source_topic": source.topic if source else None,
                    "source_partition": source.partition if source else None,
                    "source_offset": source.offset if source else None,
                    "source_key": source.key if source else None,
                    "source_value": source.value if source else None,
                    "source_headers": dict(source.headers) if source else None,
                }
            )
        inserted = await session.execute(
            pg_insert(provisioning)
            .values(rows)
            .on_conflict_do_nothing()
            .returning(provisioning.c.user_id)
        )
        new = {row[0] for row in inserted}
        result.new = [u.user_id for u in users if u.user_id in new]
        rest = [u for u in users if u.user_id not in new]
        if not rest:
            return result
        p = provisioning
        found = await session.execute(
            sa.select(p.c.user_id, p.c.step, p.c.email, p.c.opex_user_id, p.c.wallets).where(
                p.c.user_id.in_({u.user_id for u in rest})
            )
        )
        existing = {row.user_id: row for row in found}
        for user in rest:
            row = existing.get(user.user_id)
            if row is None:
                result.email_taken.append(user)
                continue
            result.duplicates.append(
                (
                    user,
                    Existing(
                        user_id=user.user_id,
                        step=Step(row.step),
                        same_email=row.email.lower() == user.email.lower(),
                        opex_user_id=row.opex_user_id,
                        wallets=_wallets(row.wallets),
                    ),
                )
            )
        return result

    async def stage_dead_letter(
        self,
        session: AsyncSession,
        source: SourceMessage,
        *,
        code: str,
        error: str,
        attempts: int = 1,
    ) -> None:
        """Stage ``source``'s original bytes for ``<topic>.dlq`` in the outbox."""
        await session.execute(
            sa.insert(outbox_table).values(
                message_id=uuid4(),
                topic=dlq_topic(source.topic),
                key=source.key,
                payload=source.value,
                headers=dead_letter_headers(
                    source, code=code, error=error, attempts=attempts, service=self._service
                ),
            )
        )
        DLQ_WRITES.labels(service=self._service, topic=source.topic).inc()

    # -- the worker's side ---------------------------------------------------------------

    async def release_leases(self) -> int:
        """Release the leases this owner holds (at start, after a crash; at stop)."""
        p = provisioning
        async with self.db.transaction() as session:
            result = await session.execute(
                sa.update(p)
                .where(p.c.lease_owner == self.owner)
                .values(lease_owner=None, lease_until=None)
                .returning(p.c.user_id)
            )
            return len(result.all())

    async def claim(self, limit: int) -> list[Provisioning]:
        """Lease up to ``limit`` users that are due (not finished, next attempt reached,
        not leased by a live process), oldest due first, with their credentials."""
        if limit <= 0:
            return []
        async with self.db.engine.begin() as conn:
            rows = (
                await conn.execute(
                    _CLAIM, {"n": limit, "owner": self.owner, "lease_s": self._lease_s}
                )
            ).all()
        return [self._state(row, row if row.password_enc is not None else None) for row in rows]

    async def _credentials(self, session: AsyncSession, user_ids: Iterable[str]) -> dict[str, Any]:
        c = credentials
        result = await session.execute(sa.select(c).where(c.c.user_id.in_(list(user_ids))))
        return {row.user_id: row for row in result}

    def _state(self, row: Any, creds: Any | None) -> Provisioning:
        box = self._box
        api_key: ApiKey | None = None
        password: SecretStr | None = None
        if creds is not None:
            password = box.decrypt(creds.password_enc)
            if creds.api_key and creds.secret_enc is not None:
                api_key = ApiKey(creds.api_key, box.decrypt(creds.secret_enc))
        return Provisioning(
            user_id=row.user_id,
            email=row.email,
            origin=Origin(row.message_id, row.correlation_id),
            step=Step(row.step),
            first_name=row.first_name,
            last_name=row.last_name,
            attempts=row.attempts,
            opex_user_id=row.opex_user_id,
            adopted=row.adopted,
            pending=box.decrypt(row.pending_enc) if row.pending_enc is not None else None,
            password=password,
            api_key=api_key,
            planned_key_id=row.planned_key_id,
            abandoned_key_ids=tuple(row.abandoned_key_ids or ()),
            wallets=_wallets(row.wallets),
            failed_at=Step(row.failed_at_step) if row.failed_at_step else None,
            failure_reason=(
                ProvisioningFailureReason(row.failure_reason) if row.failure_reason else None
            ),
            last_error_code=row.last_error_code,
            last_error=row.last_error,
            revision=row.revision,
        )

    async def save(
        self,
        before: Provisioning,
        decision: Decision,
        messages: Sequence[Envelope[Any]] = (),
    ) -> Provisioning | None:
        """Persist ``decision`` if this process still holds ``before``'s user at
        ``before.revision``; stage ``messages`` and, for a failure, the dead letter.
        Returns the persisted state (its new revision), or ``None`` if the user was lost."""
        state = decision.state
        box = self._box
        outcome = decision.outcome
        params: dict[str, Any] = {
            "user_id": before.user_id,
            "owner": self.owner,
            "revision": before.revision,
            "step": state.step.value,
            "failed_at_step": state.failed_at.value if state.failed_at else None,
            "attempts": state.attempts,
            "opex_user_id": state.opex_user_id,
            "adopted": state.adopted,
            "pending_enc": box.encrypt(state.pending) if state.pending is not None else None,
            "planned_key_id": state.planned_key_id,
            "abandoned_key_ids": list(state.abandoned_key_ids),
            "wallets": json.dumps([w.model_dump(mode="json") for w in state.wallets]),
            "failure_reason": state.failure_reason.value if state.failure_reason else None,
            "last_error_code": state.last_error_code,
            "last_error": state.last_error,
            "keep_lease": outcome is Outcome.CONTINUE,
            "lease_s": self._lease_s,
            "delay_s": decision.delay_s if outcome is Outcome.WAIT else None,
            "provisioned": outcome is Outcome.PROVISIONED,
        }
        publishes = bool(messages) or outcome is Outcome.FAILED
        # The outbox is staged through the shared `stage`, which takes an ORM session;
        # the other steps (most of them) use a plain connection, which costs less.
        async with self.db.transaction() if publishes else self.db.engine.begin() as executor:
            updated = (await executor.execute(_SAVE, params)).first()
            if updated is None:
                return None
            if _credentials_changed(before, state):
                await self._write_credentials(executor, state)
            if publishes:
                assert isinstance(executor, AsyncSession)
                if messages:
                    await stage(executor, [(m, None) for m in messages], topic_prefix=self._prefix)
                if outcome is Outcome.FAILED and decision.failure is not None:
                    await self._stage_stored_dead_letter(
                        executor,
                        before.user_id,
                        code=decision.failure.reason.value,
                        error=decision.failure.message,
                        attempts=decision.failure.attempts,
                    )
        return state.evolve(revision=updated.revision)

    async def _write_credentials(
        self, executor: AsyncSession | AsyncConnection, state: Provisioning
    ) -> None:
        if state.password is None:
            return
        box = self._box
        await executor.execute(
            _WRITE_CREDENTIALS,
            {
                "user_id": state.user_id,
                "opex_user_id": state.opex_user_id,
                "api_key": state.api_key.key if state.api_key else None,
                "secret_enc": box.encrypt(state.api_key.secret) if state.api_key else None,
                "password_enc": box.encrypt(state.password),
                "key_version": box.key_version,
            },
        )

    async def _stage_stored_dead_letter(
        self, session: AsyncSession, user_id: str, *, code: str, error: str, attempts: int
    ) -> None:
        p = provisioning
        row = (
            await session.execute(
                sa.select(
                    p.c.source_topic,
                    p.c.source_partition,
                    p.c.source_offset,
                    p.c.source_key,
                    p.c.source_value,
                    p.c.source_headers,
                ).where(p.c.user_id == user_id)
            )
        ).first()
        if row is None or row.source_value is None or row.source_topic is None:
            log.warning("dead_letter_without_source", user_id=user_id)
            return
        source = SourceMessage(
            topic=row.source_topic,
            partition=row.source_partition,
            offset=row.source_offset,
            key=row.source_key,
            value=row.source_value,
            headers=_headers(row.source_headers),
        )
        await self.stage_dead_letter(session, source, code=code, error=error, attempts=attempts)

    async def defer(self, user_id: str, delay_s: float, *, error: str) -> None:
        """Give a user back after an unexpected failure of this process (not of OPEX):
        due again after ``delay_s``."""
        p = provisioning
        async with self.db.transaction() as session:
            await session.execute(
                sa.update(p)
                .where(p.c.user_id == user_id, p.c.lease_owner == self.owner)
                .values(
                    lease_owner=None,
                    lease_until=None,
                    next_attempt_at=_seconds(delay_s),
                    last_error_code="INTERNAL_ERROR",
                    last_error=error[:1000],
                    updated_at=sa.func.now(),
                    revision=p.c.revision + 1,
                )
            )

    # -- re-sync, reconcile, ops -----------------------------------------------------------

    def _resync_values(self) -> dict[str, Any]:
        """Values that send a user back to work: a failed one from where it stopped, a
        provisioned one to the key check (which re-publishes UserProvisioned)."""
        p = provisioning
        return {
            "step": sa.case(
                (
                    p.c.step == Step.FAILED.value,
                    sa.func.coalesce(p.c.failed_at_step, Step.NEW.value),
                ),
                (p.c.step == Step.PROVISIONED.value, Step.API_KEY.value),
                else_=p.c.step,
            ),
            "failed_at_step": None,
            "failure_reason": None,
            "attempts": 0,
            "next_attempt_at": sa.func.now(),
            "updated_at": sa.func.now(),
            "revision": p.c.revision + 1,
        }

    async def resync(
        self,
        user_ids: Sequence[str] | None = None,
        *,
        failed: bool = False,
        session: AsyncSession | None = None,
    ) -> list[str]:
        """Send users back to the worker: those named, and/or every failed one. Returns
        the user ids re-queued (an unknown id is skipped)."""
        p = provisioning
        conditions: list[sa.ColumnElement[bool]] = []
        if user_ids:
            conditions.append(p.c.user_id.in_(list(user_ids)))
        if failed:
            conditions.append(p.c.step == Step.FAILED.value)
        if not conditions:
            return []
        statement = (
            sa.update(p)
            .where(sa.or_(*conditions))
            .values(self._resync_values())
            .returning(p.c.user_id)
        )
        if session is not None:
            return [row[0] for row in await session.execute(statement)]
        async with self.db.transaction() as own:
            return [row[0] for row in await own.execute(statement)]

    async def requeue_unavailable(self, max_auto_retries: int, limit: int = 1000) -> list[str]:
        """Re-queue users that failed only because OPEX was unavailable, at most
        ``max_auto_retries`` times each (the reconcile job, once OPEX is back)."""
        p = provisioning
        chosen = (
            sa.select(p.c.user_id)
            .where(
                p.c.step == Step.FAILED.value,
                p.c.failure_reason == ProvisioningFailureReason.OPEX_UNAVAILABLE.value,
                p.c.auto_retries < max_auto_retries,
            )
            .limit(limit)
            .with_for_update(skip_locked=True)
            .cte("chosen")
        )
        async with self.db.transaction() as session:
            rows = await session.execute(
                sa.update(p)
                .where(p.c.user_id == chosen.c.user_id)
                .values({**self._resync_values(), "auto_retries": p.c.auto_retries + 1})
                .returning(p.c.user_id)
            )
            return [row[0] for row in rows]

    async def due_for_verification(
        self, older_than_s: float, limit: int
    ) -> list[tuple[str, ApiKey]]:
        """Provisioned users whose key was last checked more than ``older_than_s`` ago,
        least recently checked first, with their key."""
        if limit <= 0:
            return []
        p, c = provisioning, credentials
        async with self.db.transaction() as session:
            rows = await session.execute(
                sa.select(p.c.user_id, c.c.api_key, c.c.secret_enc)
                .join(c, c.c.user_id == p.c.user_id)
                .where(
                    p.c.step == Step.PROVISIONED.value,
                    c.c.api_key.is_not(None),
                    sa.or_(
                        p.c.verified_at.is_(None),
                        p.c.verified_at < sa.func.now() - sa.literal(older_than_s) * _LEASE,
                    ),
                )
                .order_by(p.c.verified_at.asc().nulls_first())
                .limit(limit)
            )
            return [
                (row.user_id, ApiKey(row.api_key, self._box.decrypt(row.secret_enc)))
                for row in rows
            ]

    async def provisioned_keys(
        self, *, after: str | None = None, limit: int = 500
    ) -> list[tuple[str, ApiKey]]:
        """Provisioned users and their keys, in user id order, a page at a time."""
        p, c = provisioning, credentials
        query = (
            sa.select(p.c.user_id, c.c.api_key, c.c.secret_enc)
            .join(c, c.c.user_id == p.c.user_id)
            .where(p.c.step == Step.PROVISIONED.value, c.c.api_key.is_not(None))
            .order_by(p.c.user_id)
            .limit(limit)
        )
        if after is not None:
            query = query.where(p.c.user_id > after)
        async with self.db.transaction() as session:
            rows = await session.execute(query)
            return [
                (row.user_id, ApiKey(row.api_key, self._box.decrypt(row.secret_enc)))
                for row in rows
            ]

    async def count_provisioned(self) -> int:
        p = provisioning
        async with self.db.transaction() as session:
            return int(
                (
                    await session.execute(
                        sa.select(sa.func.count()).where(p.c.step == Step.PROVISIONED.value)
                    )
                ).scalar_one()
            )

    async def mark_verified(self, user_ids: Sequence[str]) -> None:
        if not user_ids:
            return
        p = provisioning
        async with self.db.transaction() as session:
            await session.execute(
                sa.update(p)
                .where(p.c.user_id.in_(list(user_ids)), p.c.step == Step.PROVISIONED.value)
                .values(verified_at=sa.func.now())
            )

    async def counts(self) -> dict[Step, int]:
        """Users per step."""
        p = provisioning
        async with self.db.transaction() as session:
            rows = await session.execute(sa.select(p.c.step, sa.func.count()).group_by(p.c.step))
            found = {Step(step): int(n) for step, n in rows}
        return {step: found.get(step, 0) for step in Step}

    async def steps_of(self, user_ids: Sequence[str]) -> dict[str, Step]:
        p = provisioning
        async with self.db.transaction() as session:
            rows = await session.execute(
                sa.select(p.c.user_id, p.c.step).where(p.c.user_id.in_(list(user_ids)))
            )
            return {user_id: Step(step) for user_id, step in rows}

    async def get(self, user_id: str) -> StoredUser | None:
        p = provisioning
        async with self.db.transaction() as session:
            row = (await session.execute(sa.select(p).where(p.c.user_id == user_id))).first()
        if row is None:
            return None
        return StoredUser(
            user_id=row.user_id,
            step=Step(row.step),
            attempts=row.attempts,
            opex_user_id=row.opex_user_id,
            failed_at=Step(row.failed_at_step) if row.failed_at_step else None,
            failure_reason=row.failure_reason,
            last_error_code=row.last_error_code,
            last_error=row.last_error,
            abandoned_key_ids=tuple(row.abandoned_key_ids or ()),
        )

    async def load(self, user_id: str) -> Provisioning | None:
        """A user's full state, secrets decrypted (tests and ops)."""
        p = provisioning
        async with self.db.transaction() as session:
            row = (await session.execute(sa.select(p).where(p.c.user_id == user_id))).first()
            if row is None:
                return None
            creds = await self._credentials(session, [user_id])
        return self._state(row, creds.get(user_id))

    async def rotate_secrets(self, batch: int = 500) -> int:
        """Re-encrypt every stored secret with the first key of ``OPEXBRIDGE_SECRETS_KEY``;
        returns the number of rows rewritten."""
        box = self._box
        c, p = credentials, provisioning
        done = 0
        async with self.db.transaction() as session:
            rows = (
                await session.execute(
                    sa.select(c.c.user_id, c.c.secret_enc, c.c.password_enc)
                    .where(c.c.key_version != box.key_version)
                    .with_for_update()
                )
            ).all()
            for start in range(0, len(rows), batch):
                for row in rows[start : start + batch]:
                    await session.execute(
                        sa.update(c)
                        .where(c.c.user_id == row.user_id)
                        .values(
                            password_enc=box.rotate(row.password_enc),
                            secret_enc=(
                                box.rotate(row.secret_enc) if row.secret_enc is not None else None
                            ),
                            key_version=box.key_version,
                            updated_at=sa.func.now(),
                        )
                    )
                    done += 1
            pending = (
                await session.execute(
                    sa.select(p.c.user_id, p.c.pending_enc)
                    .where(p.c.pending_enc.is_not(None))
                    .with_for_update()
                )
            ).all()
            for row in pending:
                await session.execute(
                    sa.update(p)
                    .where(p.c.user_id == row.user_id)
                    .values(pending_enc=box.rotate(row.pending_enc))
                )
        return done


def _same_key(a: ApiKey | None, b: ApiKey | None) -> bool:
    if a is None or b is None:
        return a is b
    return a.key == b.key and a.secret.get_secret_value() == b.secret.get_secret_value()


def _credentials_changed(before: Provisioning, after: Provisioning) -> bool:
    if after.password is None:
        return False
    if before.password is None or (
        before.password.get_secret_value() != after.password.get_secret_value()
    ):
        return True
    return before.opex_user_id != after.opex_user_id or not _same_key(before.api_key, after.api_key)
