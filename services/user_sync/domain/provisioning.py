"""The provisioning state machine: one per platform user, persisted after every step.

```
NEW ──register──▶ REGISTERED ──verify──▶ VERIFIED ──confirm──▶ CONFIRMED ──login──▶ LOGGED_IN
 ▲  (OTP held)        │  (token held)         │                                     │
 │                    └──OTP refused──────────┴─token refused, login fails──▶ NEW   │ create API key
 └── register: "already exists" ──login with our password──▶ LOGGED_IN (adoption)   ▼
                                                                                   API_KEY
      LOGGED_IN ◀──the stored key is refused (re-key)────────────────────────────── │ signed read:
                                                                                    ▼ wallets, USDT
                                                                               PROVISIONED
      any step ──permanent refusal, or max attempts──▶ FAILED (remembers where it stopped)
```

A step returns a `StepResult`: `Advance` (a new state to persist before the next call;
with a ``setback`` when it goes back a step, which counts as a failed attempt), `Retry`
(a transient failure: try again after a backoff with jitter) or `Fail` (a permanent
refusal). `settle` turns it into a `Decision`: the state to persist, whether to go on,
wait or stop, and the failure to announce. Everything here is pure: no I/O, no clock.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any
from uuid import UUID

from pydantic import SecretStr

from shared.contracts import ProvisioningFailureReason, Wallet
from shared.opex import ApiKey

__all__ = [
    "CODE_FAILURE",
    "STEP_FAILURE",
    "TERMINAL",
    "TRANSIENT_OPEX",
    "Advance",
    "Decision",
    "ErrorCode",
    "Fail",
    "Failure",
    "Origin",
    "Outcome",
    "Provisioning",
    "Retry",
    "RetryPolicy",
    "Step",
    "StepResult",
    "scrub",
    "settle",
]


class Step(StrEnum):
    """Where a user's provisioning stands: the last step whose outcome is persisted."""

    NEW = "NEW"
    """Recorded from UserRegistered; nothing asked of OPEX yet."""
    REGISTERED = "REGISTERED"
    """OPEX started the registration and sent the OTP (held encrypted); our password is
    generated and stored (encrypted) from here on."""
    VERIFIED = "VERIFIED"
    """OPEX accepted the OTP; its register token is held encrypted."""
    CONFIRMED = "CONFIRMED"
    """OPEX enabled the account with our password (and created its wallets)."""
    LOGGED_IN = "LOGGED_IN"
    """The password logs in; OPEX's uuid is mapped; the next API key's id is chosen."""
    API_KEY = "API_KEY"
    """The API key is created and its secret stored encrypted."""
    PROVISIONED = "PROVISIONED"
    """A signed read with the key found the wallets; UserProvisioned is published."""
    FAILED = "FAILED"
    """Given up; UserProvisioningFailed is published and the message dead-lettered."""


TERMINAL = frozenset({Step.PROVISIONED, Step.FAILED})

STEP_FAILURE: dict[Step, ProvisioningFailureReason] = {
    Step.NEW: ProvisioningFailureReason.REGISTRATION_FAILED,
    Step.REGISTERED: ProvisioningFailureReason.REGISTRATION_FAILED,
    Step.VERIFIED: ProvisioningFailureReason.REGISTRATION_FAILED,
    Step.CONFIRMED: ProvisioningFailureReason.LOGIN_FAILED,
    Step.LOGGED_IN: ProvisioningFailureReason.API_KEY_FAILED,
    Step.API_KEY: ProvisioningFailureReason.WALLETS_MISSING,
}
"""The reason announced when a step keeps failing for a reason of its own."""


class ErrorCode(StrEnum):
    """Why an attempt did not get further (``last_error_code``)."""

    OPEX_UNAVAILABLE = "OPEX_UNAVAILABLE"
    OPEX_RATE_LIMITED = "OPEX_RATE_LIMITED"
    OPEX_AMBIGUOUS = "OPEX_AMBIGUOUS"
    OPEX_REFUSED = "OPEX_REFUSED"
    OTP_REJECTED = "OTP_REJECTED"
    TOKEN_REJECTED = "TOKEN_REJECTED"  # noqa: S105 - a reason code, not a token
    LOGIN_REFUSED = "LOGIN_REFUSED"
    SESSION_EXPIRED = "SESSION_EXPIRED"
    KEY_ANSWER_LOST = "KEY_ANSWER_LOST"
    KEY_REJECTED = "KEY_REJECTED"
    WALLETS_MISSING = "WALLETS_MISSING"
    INTERNAL_ERROR = "INTERNAL_ERROR"


CODE_FAILURE: dict[str, ProvisioningFailureReason] = {
    "KEY_REJECTED": ProvisioningFailureReason.API_KEY_FAILED,
    "KEY_ANSWER_LOST": ProvisioningFailureReason.API_KEY_FAILED,
    "LOGIN_REFUSED": ProvisioningFailureReason.LOGIN_FAILED,
    "SESSION_EXPIRED": ProvisioningFailureReason.LOGIN_FAILED,
    "WALLETS_MISSING": ProvisioningFailureReason.WALLETS_MISSING,
    "OTP_REJECTED": ProvisioningFailureReason.REGISTRATION_FAILED,
    "TOKEN_REJECTED": ProvisioningFailureReason.REGISTRATION_FAILED,
}
"""The reason announced when attempts run out on an error that names its own cause."""

TRANSIENT_OPEX = frozenset(
    {ErrorCode.OPEX_UNAVAILABLE, ErrorCode.OPEX_RATE_LIMITED, ErrorCode.OPEX_AMBIGUOUS}
)
"""OPEX down, overloaded, or an answer lost: exhausting these means OPEX_UNAVAILABLE."""


@dataclass(frozen=True, slots=True)
class Origin:
    """The UserRegistered that started this provisioning (for the outcome's envelope)."""

    message_id: UUID
    correlation_id: UUID


@dataclass(frozen=True, slots=True)
class Provisioning:
    """One user's provisioning, secrets decrypted (``SecretStr``, never in the repr)."""

    user_id: str
    email: str
    origin: Origin
    step: Step = Step.NEW
    first_name: str | None = None
    last_name: str | None = None
    attempts: int = 0
    """Failed attempts so far (a step back counts as one); reset by a re-sync."""
    opex_user_id: UUID | None = None
    adopted: bool = False
    """The OPEX account existed before this run registered it (found by login)."""
    pending: SecretStr | None = field(default=None, repr=False)
    """The OTP at REGISTERED, the register token at VERIFIED."""
    password: SecretStr | None = field(default=None, repr=False)
    api_key: ApiKey | None = field(default=None, repr=False)
    planned_key_id: str | None = None
    """The id the next API key is created with (chosen, and persisted, before the call)."""
    abandoned_key_ids: tuple[str, ...] = ()
    """Keys that exist on OPEX but are not used: created by an attempt whose answer was
    lost (their secret is unknown), or refused by OPEX later."""
    wallets: tuple[Wallet, ...] = ()
    failed_at: Step | None = None
    failure_reason: ProvisioningFailureReason | None = None
    last_error_code: str | None = None
    last_error: str | None = None
    revision: int = 0

    def evolve(self, **changes: Any) -> Provisioning:
        return dataclasses.replace(self, **changes)

    def secrets(self) -> tuple[SecretStr, ...]:
        """Every secret this state holds (to scrub from error texts)."""
        held = [self.pending, self.password, self.api_key.secret if self.api_key else None]
        return tuple(s for s in held if s is not None)


# ------------------------------------------------------------------------ step results


@dataclass(frozen=True, slots=True)
class Advance:
    """Persist ``state`` and go on. With ``setback``, the step went back (an OTP or token
    OPEX refused, a lost or refused API key): that counts as a failed attempt."""

    state: Provisioning
    setback: ErrorCode | None = None
    message: str = ""


@dataclass(frozen=True, slots=True)
class Retry:
    """A transient failure: nothing to persist but the attempt; try again later."""

    code: ErrorCode
    message: str
    retry_after_s: float | None = None


@dataclass(frozen=True, slots=True)
class Fail:
    """A permanent refusal: give up now."""

    reason: ProvisioningFailureReason
    message: str


StepResult = Advance | Retry | Fail


# ---------------------------------------------------------------------------- settling


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Backoff of failed attempts: exponential with "equal jitter" (half the delay
    fixed, half random, so delays grow but never synchronise), capped at
    ``max_delay_s``; a rate limit's ``Retry-After`` is honoured (up to the cap).
    ``max_attempts`` failed attempts end the provisioning."""

    max_attempts: int = 10
    base_delay_s: float = 1.0
    max_delay_s: float = 300.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1 or self.base_delay_s < 0 or self.max_delay_s < 0:
            raise ValueError("max_attempts >= 1 and non-negative delays")

    def delay(
        self,
        attempt: int,
        *,
        at_least: float | None = None,
        rng: Callable[[], float] = random.random,
    ) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based)."""
        exponent = min(max(attempt - 1, 0), 30)
        ceiling = min(self.max_delay_s, self.base_delay_s * float(2**exponent))
        delay = ceiling / 2 + rng() * ceiling / 2
        if at_least is not None:
            delay = max(delay, min(at_least, self.max_delay_s))
        return delay


class Outcome(StrEnum):
    CONTINUE = "continue"
    """Persisted; take the next step now."""
    WAIT = "wait"
    """Persisted; try again after ``delay_s``."""
    PROVISIONED = "provisioned"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class Failure:
    """What UserProvisioningFailed says."""

    reason: ProvisioningFailureReason
    message: str
    attempts: int


@dataclass(frozen=True, slots=True)
class Decision:
    state: Provisioning
    outcome: Outcome
    delay_s: float = 0.0
    failure: Failure | None = None


_MAX_ERROR = 1000


def scrub(text: str, secrets: Iterable[SecretStr | str | None]) -> str:
    """``text`` with every occurrence of ``secrets`` replaced, and at most 1000
    characters: error texts are stored, logged and published."""
    for secret in secrets:
        if secret is None:
            continue
        value = secret.get_secret_value() if isinstance(secret, SecretStr) else secret
        if len(value) >= 4:
            text = text.replace(value, "[redacted]")
    return text[:_MAX_ERROR]


def _failed(p: Provisioning, reason: ProvisioningFailureReason, message: str) -> Decision:
    attempts = p.attempts + 1
    state = p.evolve(
        step=Step.FAILED,
        failed_at=p.step,
        attempts=attempts,
        failure_reason=reason,
        pending=None,
        last_error=message,
        last_error_code=p.last_error_code or reason.value,
    )
    return Decision(state, Outcome.FAILED, failure=Failure(reason, message, attempts))


def _exhausted(step: Step, code: ErrorCode) -> ProvisioningFailureReason:
    """Why a user failed when its attempts ran out on ``code`` at ``step``."""
    if code in TRANSIENT_OPEX:
        return ProvisioningFailureReason.OPEX_UNAVAILABLE
    if code is ErrorCode.INTERNAL_ERROR:
        return ProvisioningFailureReason.RETRIES_EXHAUSTED
    return CODE_FAILURE.get(code) or STEP_FAILURE.get(
        step, ProvisioningFailureReason.RETRIES_EXHAUSTED
    )


def settle(
    p: Provisioning,
    result: StepResult,
    policy: RetryPolicy,
    *,
    rng: Callable[[], float] = random.random,
) -> Decision:
    """The decision after ``p`` took a step with ``result``."""
    if isinstance(result, Fail):
        return _failed(
            p.evolve(last_error_code=result.reason.value),
            result.reason,
            scrub(result.message, p.secrets()),
        )
    if isinstance(result, Advance):
        state = result.state
        if result.setback is None:
            state = state.evolve(last_error_code=None, last_error=None)
            outcome = Outcome.PROVISIONED if state.step is Step.PROVISIONED else Outcome.CONTINUE
            return Decision(state, outcome)
        message = scrub(result.message, (*p.secrets(), *state.secrets()))
        attempts = p.attempts + 1
        if attempts >= policy.max_attempts:
            reason = _exhausted(p.step, result.setback)
            return _failed(
                state.evolve(step=p.step, attempts=p.attempts, last_error_code=result.setback),
                reason,
                f"gave up after {attempts} attempts at {p.step}: {message}",
            )
        state = state.evolve(attempts=attempts, last_error_code=result.setback, last_error=message)
        return Decision(state, Outcome.CONTINUE)
    message = scrub(result.message, p.secrets())
    attempts = p.attempts + 1
    if attempts >= policy.max_attempts:
        return _failed(
            p.evolve(last_error_code=result.code),
            _exhausted(p.step, result.code),
            f"gave up after {attempts} attempts at {p.step}: {message}",
        )
    delay = policy.delay(attempts, at_least=result.retry_after_s, rng=rng)
    state = p.evolve(attempts=attempts, last_error_code=result.code, last_error=message)
    return Decision(state, Outcome.WAIT, delay_s=delay)
