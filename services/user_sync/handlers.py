"""user_sync's handlers: what to do with a UserRegistered, and how one provisioning step
talks to OPEX. No broker and no session of their own: the consumer side gets the
Consumer's `Transaction`, the step side an `OpexPort` (`shared.opex.OpexClient` in
production, a fake in unit tests).

- `RegistrationHandler` records each UserRegistered (a provisioning row, due now) and
  returns at once: OPEX is not called while a Kafka partition waits.
- `Provisioner.step` takes one user one step further and says how it went
  (`Advance`, `Retry`, `Fail`; see `services.user_sync.domain.provisioning`).
- `outcome_messages` are the envelopes a decision publishes.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol
from uuid import UUID, uuid4

import structlog
from pydantic import SecretStr, ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from services.user_sync.domain.password import generate_password
from services.user_sync.domain.provisioning import (
    Advance,
    Decision,
    ErrorCode,
    Fail,
    Origin,
    Outcome,
    Provisioning,
    Retry,
    Step,
    StepResult,
)
from services.user_sync.domain.registration import NewUser, Recorded, SourceMessage
from shared.contracts import (
    Envelope,
    ProvisioningFailureReason,
    UserProvisioned,
    UserProvisioningFailed,
    UserRegistered,
    Wallet,
    caused_by,
    new_message,
)
from shared.messaging import Delivery, Transaction
from shared.opex import (
    Account,
    ActionToken,
    ApiKey,
    ApiKeySecret,
    Bearer,
    Health,
    OpexAmbiguous,
    OpexAuthError,
    OpexRateLimited,
    OpexRefused,
    OpexUnauthenticated,
    OpexUnavailable,
    Registration,
    Token,
)

__all__ = [
    "OpexCodes",
    "OpexPort",
    "Provisioner",
    "RegistrationHandler",
    "RegistrationStore",
    "StepSession",
    "outcome_messages",
]

log = structlog.get_logger(__name__)

QUOTE_ASSET = "USDT"


class OpexCodes:
    """OPEX's error codes this service reacts to (OPEX.md; the sandbox's errors)."""

    BAD_REQUEST = 1002
    INVALID_OTP = 5005
    INVALID_USERNAME = 5014
    INVALID_REGISTER_TOKEN = 5016
    EXPIRED_OTP = 5017
    WRONG_PASSWORD = 5021
    USER_ALREADY_EXISTS = 5022
    API_KEY_LIMIT = 7007


class RegistrationStore(Protocol):
    """The store's side of recording registrations (`adapters.store.ProvisioningStore`)."""

    async def record(self, session: AsyncSession, users: Sequence[NewUser]) -> Recorded: ...

    async def resync(
        self,
        user_ids: Sequence[str] | None = ...,
        *,
        failed: bool = ...,
        session: AsyncSession | None = ...,
    ) -> list[str]: ...

    async def stage_dead_letter(
        self,
        session: AsyncSession,
        source: SourceMessage,
        *,
        code: str,
        error: str,
        attempts: int = ...,
    ) -> None: ...


class OpexPort(Protocol):
    """The calls user_sync makes; `shared.opex.OpexClient` has them all."""

    async def register(
        self, username: str, *, first_name: str | None = ..., last_name: str | None = ...
    ) -> Registration: ...

    async def verify(self, username: str, otp: SecretStr) -> ActionToken: ...

    async def confirm(self, token: SecretStr, password: SecretStr) -> Token | None: ...

    async def login(self, username: str, password: SecretStr) -> Token: ...

    async def create_api_key(
        self, bearer: Bearer, label: str, *, api_key_id: str | None = ...
    ) -> ApiKeySecret: ...

    async def account(self, creds: ApiKey) -> Account: ...

    async def health(self) -> Health: ...


# ------------------------------------------------------------------------ consumption


def _source(delivery: Delivery | None) -> SourceMessage | None:
    if delivery is None:
        return None
    return SourceMessage(
        topic=delivery.topic,
        partition=delivery.partition,
        offset=delivery.offset,
        key=delivery.key,
        value=delivery.value,
        headers={k: v.decode("utf-8", "replace") for k, v in delivery.headers},
    )


def provisioned_message(
    user_id: str,
    opex_user_id: UUID,
    wallets: Sequence[Wallet],
    *,
    cause: Envelope[Any] | Origin,
) -> Envelope[UserProvisioned]:
    data = UserProvisioned(opex_user_id=opex_user_id, wallets=tuple(wallets))
    if isinstance(cause, Envelope):
        return caused_by(cause, data)
    return new_message(
        data, user_id=user_id, correlation_id=cause.correlation_id, causation_id=cause.message_id
    )


def failed_message(
    user_id: str,
    reason: ProvisioningFailureReason,
    text: str,
    attempts: int,
    *,
    cause: Envelope[Any] | Origin,
) -> Envelope[UserProvisioningFailed]:
    data = UserProvisioningFailed(reason_code=reason, reason=text, attempts=max(1, attempts))
    if isinstance(cause, Envelope):
        return caused_by(cause, data)
    return new_message(
        data, user_id=user_id, correlation_id=cause.correlation_id, causation_id=cause.message_id
    )


class RegistrationHandler:
    """Records UserRegistered messages, in the Consumer's transaction.

    - a new user: a provisioning row, due now (the worker does the rest);
    - the same user again (another message): nothing new; if it was provisioned,
      UserProvisioned again (for a platform that missed it); if it had failed, it is
      re-queued where it stopped;
    - an email another platform user already has: UserProvisioningFailed and the message
      to the DLQ (two platform users cannot share one OPEX account);
    - UserProvisioned / UserProvisioningFailed (this service's own) are ignored.
    """

    def __init__(self, store: RegistrationStore) -> None:
        self._store = store

    async def handle(self, envelope: Envelope[Any], tx: Transaction) -> None:
        deliveries = {envelope.id: tx.delivery} if tx.delivery is not None else {}
        await self.handle_batch([envelope], tx, deliveries)

    async def handle_batch(
        self,
        envelopes: Sequence[Envelope[Any]],
        tx: Transaction,
        deliveries: Mapping[UUID, Delivery],
    ) -> None:
        users: list[NewUser] = []
        by_id: dict[UUID, Envelope[Any]] = {}
        for envelope in envelopes:
            if not isinstance(envelope.data, UserRegistered) or envelope.user_id is None:
                continue
            data = envelope.data
            by_id[envelope.id] = envelope
            users.append(
                NewUser(
                    user_id=envelope.user_id,
                    email=data.email,
                    origin=Origin(envelope.id, envelope.correlation_id),
                    first_name=data.first_name,
                    last_name=data.last_name,
                    source=_source(deliveries.get(envelope.id)),
                )
            )
        if not users:
            return
        recorded = await self._store.record(tx.session, users)
        if recorded.new:
            log.info("users_recorded", count=len(recorded.new))
        requeue: list[str] = []
        for user, existing in recorded.duplicates:
            cause = by_id[user.origin.message_id]
            if not existing.same_email:
                log.warning("user_registered_again_with_another_email", user_id=user.user_id)
            if existing.step is Step.PROVISIONED and existing.opex_user_id is not None:
                tx.publish(
                    provisioned_message(
                        user.user_id, existing.opex_user_id, existing.wallets, cause=cause
                    )
                )
            elif existing.step is Step.FAILED:
                requeue.append(user.user_id)
            else:
                log.info("user_registered_duplicate", user_id=user.user_id, step=existing.step)
        if requeue:
            await self._store.resync(requeue, session=tx.session)
            log.info("failed_users_requeued_by_new_registration", count=len(requeue))
        for user in recorded.email_taken:
            reason = (
                "another platform user is already registered with this email; one OPEX "
                "account cannot belong to two platform users"
            )
            log.warning("user_registered_email_taken", user_id=user.user_id)
            tx.publish(
                failed_message(
                    user.user_id,
                    ProvisioningFailureReason.REGISTRATION_FAILED,
                    reason,
                    1,
                    cause=by_id[user.origin.message_id],
                )
            )
            if user.source is not None:
                await self._store.stage_dead_letter(
                    tx.session, user.source, code="EMAIL_TAKEN", error=reason
                )


# --------------------------------------------------------------------------- the steps


@dataclass
class StepSession:
    """What one drive of a user keeps in memory between steps (never persisted): the
    access token of its last login."""

    bearer: Bearer | None = None


def outcome_messages(decision: Decision) -> list[Envelope[Any]]:
    """What a decision publishes: UserProvisioned or UserProvisioningFailed."""
    state = decision.state
    if decision.outcome is Outcome.PROVISIONED and state.opex_user_id is not None:
        return [
            provisioned_message(
                state.user_id, state.opex_user_id, state.wallets, cause=state.origin
            )
        ]
    if decision.outcome is Outcome.FAILED and decision.failure is not None:
        failure = decision.failure
        return [
            failed_message(
                state.user_id, failure.reason, failure.message, failure.attempts, cause=state.origin
            )
        ]
    return []


def _new_key_id() -> str:
    return str(uuid4())


def _short(error: BaseException) -> str:
    return f"{error}"[:500]


class Provisioner:
    """Takes a user one step further on OPEX.

    Each step is safe to repeat after a crash at any point, because what it finds on
    OPEX tells it what an earlier, unrecorded attempt did:

    - register again while the account is still disabled: OPEX sends a new OTP;
    - register once it is enabled (5022): it is ours if the password we generated and
      stored before confirming opens it (adoption); otherwise it belongs to someone else;
    - an OTP or register token that OPEX no longer accepts: it was used, or expired; a
      login with our password tells which, else register again;
    - an API key is created with an id chosen and stored beforehand; if OPEX answers
      that the id exists, an earlier attempt created it and its secret was lost: that
      key is recorded as abandoned and a new id is used (one orphan, never a loop).
    """

    def __init__(
        self,
        opex: OpexPort,
        *,
        new_password: Callable[[], str] = generate_password,
        new_key_id: Callable[[], str] = _new_key_id,
        key_label: str = "opex-bridge",
    ) -> None:
        self._opex = opex
        self._new_password = new_password
        self._new_key_id = new_key_id
        self._label = key_label
        self._steps: dict[Step, Callable[[Provisioning, StepSession], Awaitable[StepResult]]] = {
            Step.NEW: self._register,
            Step.REGISTERED: self._verify,
            Step.VERIFIED: self._confirm,
            Step.CONFIRMED: self._login,
            Step.LOGGED_IN: self._create_key,
            Step.API_KEY: self._check_wallets,
        }

    async def step(self, p: Provisioning, session: StepSession) -> StepResult:
        """One step of ``p``; OPEX's transient failures become `Retry`, an unexpected
        refusal or error a `Retry` too (it ends as the step's failure, or
        RETRIES_EXHAUSTED, after the attempts). Only cancellation propagates."""
        run = self._steps.get(p.step)
        if run is None:
            return Fail(
                ProvisioningFailureReason.RETRIES_EXHAUSTED, f"{p.step} is not a working step"
            )
        try:
            return await run(p, session)
        except OpexRateLimited as error:
            return Retry(ErrorCode.OPEX_RATE_LIMITED, _short(error), error.retry_after_s)
        except OpexUnavailable as error:
            return Retry(ErrorCode.OPEX_UNAVAILABLE, _short(error), error.retry_after_s)
        except OpexAmbiguous as error:
            return Retry(ErrorCode.OPEX_AMBIGUOUS, _short(error))
        except OpexRefused as error:
            return Retry(ErrorCode.OPEX_REFUSED, f"unexpected refusal at {p.step}: {error}")
        except ValidationError as error:  # an OPEX answer this service cannot use
            return Retry(
                ErrorCode.INTERNAL_ERROR,
                f"unreadable OPEX answer at {p.step}: {error.error_count()} errors",
            )
        except Exception as error:  # a bug: counted, so it ends as RETRIES_EXHAUSTED
            log.error("step_crashed", user_id=p.user_id, step=p.step, error=type(error).__name__)
            return Retry(ErrorCode.INTERNAL_ERROR, f"{type(error).__name__} at {p.step}")

    # -- registration -------------------------------------------------------------------

    async def _register(self, p: Provisioning, s: StepSession) -> StepResult:
        try:
            registration = await self._opex.register(
                p.email, first_name=p.first_name, last_name=p.last_name
            )
        except OpexRefused as error:
            if error.code == OpexCodes.USER_ALREADY_EXISTS:
                return await self._adopt(p, s)
            if error.code == OpexCodes.INVALID_USERNAME:
                return Fail(
                    ProvisioningFailureReason.REGISTRATION_FAILED,
                    "OPEX refused the email as a username (5014 InvalidUsername)",
                )
            raise
        if registration.otp is None:
            return Fail(
                ProvisioningFailureReason.REGISTRATION_FAILED,
                "OPEX answered the registration without its OTP: user_sync needs OPEX's "
                "'OTP in response' setting to finish registrations on the user's behalf",
            )
        password = p.password or SecretStr(self._new_password())
        return Advance(p.evolve(step=Step.REGISTERED, pending=registration.otp, password=password))

    async def _adopt(self, p: Provisioning, s: StepSession) -> StepResult:
        """OPEX already has an enabled account for this email."""
        if p.password is None:
            return Fail(
                ProvisioningFailureReason.REGISTRATION_FAILED,
                "OPEX already has an account for this email that user_sync did not create "
                "and holds no password for; it is not taken over",
            )
        try:
            token = await self._opex.login(p.email, p.password)
        except OpexRefused:
            return Fail(
                ProvisioningFailureReason.REGISTRATION_FAILED,
                "OPEX already has an account for this email and the password user_sync "
                "holds does not open it; it is not taken over",
            )
        log.info("opex_account_adopted", user_id=p.user_id)
        return self._logged_in(p.evolve(adopted=True), s, token)

    async def _verify(self, p: Provisioning, s: StepSession) -> StepResult:
        if p.pending is None:  # resumed without the OTP (a re-sync of a failed user)
            return Advance(p.evolve(step=Step.NEW))
        try:
            action = await self._opex.verify(p.email, p.pending)
        except OpexRefused as error:
            if error.code in (OpexCodes.INVALID_OTP, OpexCodes.EXPIRED_OTP):
                return Advance(
                    p.evolve(step=Step.NEW, pending=None),
                    setback=ErrorCode.OTP_REJECTED,
                    message=f"OPEX no longer accepts the OTP ({error.code} {error.name}); "
                    "registering again for a new one",
                )
            raise
        return Advance(p.evolve(step=Step.VERIFIED, pending=action.token))

    async def _confirm(self, p: Provisioning, s: StepSession) -> StepResult:
        if p.pending is None or p.password is None:
            return Advance(p.evolve(step=Step.NEW, pending=None))
        try:
            token = await self._opex.confirm(p.pending, p.password)
        except OpexRefused as error:
            if error.code not in (OpexCodes.INVALID_REGISTER_TOKEN, OpexCodes.BAD_REQUEST):
                raise
            # Used already (an earlier confirm whose answer was lost?) or expired.
            try:
                token = await self._opex.login(p.email, p.password)
            except OpexRefused:
                return Advance(
                    p.evolve(step=Step.NEW, pending=None),
                    setback=ErrorCode.TOKEN_REJECTED,
                    message=f"OPEX no longer accepts the register token ({error.code} "
                    f"{error.name}) and the account does not open yet; registering again",
                )
            return self._logged_in(p.evolve(pending=None), s, token)
        if token is not None:  # OPEX logs the user in when a client secret is configured
            return self._logged_in(p.evolve(pending=None), s, token)
        return Advance(p.evolve(step=Step.CONFIRMED, pending=None))

    async def _login(self, p: Provisioning, s: StepSession) -> StepResult:
        assert p.password is not None, "a confirmed user has a stored password"
        try:
            token = await self._opex.login(p.email, p.password)
        except OpexRefused as error:
            return Retry(ErrorCode.LOGIN_REFUSED, f"OPEX refused the login: {error}")
        return self._logged_in(p, s, token)

    def _logged_in(self, p: Provisioning, s: StepSession, token: Token) -> StepResult:
        try:
            opex_user_id = UUID(token.subject or "")
        except ValueError:
            return Fail(
                ProvisioningFailureReason.LOGIN_FAILED,
                "OPEX's access token names no user id (no uuid in its 'sub' claim)",
            )
        if p.opex_user_id is not None and p.opex_user_id != opex_user_id:
            return Fail(
                ProvisioningFailureReason.LOGIN_FAILED,
                "the OPEX account of this email is not the one mapped to the user before",
            )
        s.bearer = token.bearer()
        return Advance(
            p.evolve(
                step=Step.LOGGED_IN,
                opex_user_id=opex_user_id,
                planned_key_id=p.planned_key_id or self._new_key_id(),
            )
        )

    # -- API key and wallets ------------------------------------------------------------

    async def _create_key(self, p: Provisioning, s: StepSession) -> StepResult:
        if p.planned_key_id is None:  # plan (and persist) the id before creating the key
            return Advance(p.evolve(planned_key_id=self._new_key_id()))
        if s.bearer is None:  # resumed after a restart: log in again
            assert p.password is not None, "a logged-in user has a stored password"
            try:
                token = await self._opex.login(p.email, p.password)
            except OpexRefused as error:
                return Retry(ErrorCode.LOGIN_REFUSED, f"OPEX refused the login: {error}")
            s.bearer = token.bearer()
        key_id = p.planned_key_id
        try:
            created = await self._opex.create_api_key(
                s.bearer, f"{self._label} {p.user_id}"[:100], api_key_id=key_id
            )
        except OpexUnauthenticated:
            s.bearer = None
            return Advance(
                p,
                setback=ErrorCode.SESSION_EXPIRED,
                message="OPEX refused the access token; logging in again",
            )
        except OpexRefused as error:
            if error.code == OpexCodes.API_KEY_LIMIT:
                return Fail(
                    ProvisioningFailureReason.API_KEY_FAILED,
                    "OPEX's limit of API keys for this account is reached; delete unused "
                    "keys on OPEX, then re-sync the user",
                )
            if error.code == OpexCodes.BAD_REQUEST and "already exists" in (
                error.opex_message or ""
            ):
                log.warning("api_key_answer_lost", user_id=p.user_id)
                return Advance(
                    p.evolve(
                        planned_key_id=self._new_key_id(),
                        abandoned_key_ids=(*p.abandoned_key_ids, key_id),
                    ),
                    setback=ErrorCode.KEY_ANSWER_LOST,
                    message="an earlier attempt created the API key but its answer (the "
                    "secret) was lost; the key is recorded as abandoned and a new one created",
                )
            raise
        return Advance(
            p.evolve(step=Step.API_KEY, api_key=created.credentials(), planned_key_id=None)
        )

    async def _check_wallets(self, p: Provisioning, s: StepSession) -> StepResult:
        if p.api_key is None:
            return Advance(p.evolve(step=Step.LOGGED_IN, planned_key_id=self._new_key_id()))
        try:
            account = await self._opex.account(p.api_key)
        except OpexAuthError as error:
            log.warning("api_key_refused", user_id=p.user_id, code=error.code)
            if p.last_error_code != ErrorCode.KEY_REJECTED:
                # once may be OPEX's auth service stumbling: ask again before replacing
                return Retry(
                    ErrorCode.KEY_REJECTED,
                    f"OPEX refuses the stored API key ({error}); asking again before replacing it",
                )
            return Advance(
                p.evolve(
                    step=Step.LOGGED_IN,
                    api_key=None,
                    planned_key_id=self._new_key_id(),
                    abandoned_key_ids=(*p.abandoned_key_ids, p.api_key.key),
                ),
                setback=ErrorCode.KEY_REJECTED,
                message=f"OPEX refuses the stored API key ({error}); creating a new one",
            )
        wallets: list[Wallet] = []
        for balance in account.balances:
            try:
                wallets.append(Wallet(asset=balance.asset, free=balance.free))
            except ValidationError:
                continue
        quote = next((w for w in wallets if w.asset == QUOTE_ASSET), None)
        if quote is None:
            return Retry(ErrorCode.WALLETS_MISSING, f"OPEX lists no {QUOTE_ASSET} wallet yet")
        if quote.free != 0 and not p.adopted and not p.wallets:
            log.warning("new_account_quote_not_zero", user_id=p.user_id)
        return Advance(p.evolve(step=Step.PROVISIONED, wallets=tuple(wallets)))
