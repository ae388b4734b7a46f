"""`settle`, `RetryPolicy`, `scrub` and the state's repr: pure, no OPEX."""

from __future__ import annotations

import uuid

import pytest
from pydantic import SecretStr

from services.user_sync.domain.provisioning import (
    Advance,
    ErrorCode,
    Fail,
    Origin,
    Outcome,
    Provisioning,
    Retry,
    RetryPolicy,
    Step,
    scrub,
    settle,
)
from shared.contracts import ProvisioningFailureReason
from shared.opex import ApiKey

POLICY = RetryPolicy(max_attempts=3, base_delay_s=2.0, max_delay_s=5.0)


def user(**changes: object) -> Provisioning:
    base = Provisioning(
        user_id="7", email="x@example.com", origin=Origin(uuid.uuid4(), uuid.uuid4())
    )
    return base.evolve(**changes)


def test_settle_when_a_step_advances_then_continue_and_clear_the_last_error() -> None:
    p = user(last_error_code="OPEX_UNAVAILABLE", last_error="down", attempts=1)
    decision = settle(p, Advance(p.evolve(step=Step.REGISTERED)), POLICY)
    assert decision.outcome is Outcome.CONTINUE
    assert decision.state.step is Step.REGISTERED
    assert decision.state.last_error is None
    assert decision.state.attempts == 1
    assert decision.failure is None


def test_settle_when_the_last_step_advances_then_provisioned() -> None:
    p = user(step=Step.API_KEY)
    decision = settle(p, Advance(p.evolve(step=Step.PROVISIONED)), POLICY)
    assert decision.outcome is Outcome.PROVISIONED


def test_settle_when_a_step_goes_back_then_it_counts_as_an_attempt_and_continues() -> None:
    p = user(step=Step.REGISTERED)
    decision = settle(
        p, Advance(p.evolve(step=Step.NEW), ErrorCode.OTP_REJECTED, "expired"), POLICY
    )
    assert decision.outcome is Outcome.CONTINUE
    assert decision.state.step is Step.NEW
    assert decision.state.attempts == 1
    assert decision.state.last_error_code == ErrorCode.OTP_REJECTED


def test_settle_when_steps_back_exhaust_the_attempts_then_failed_where_it_was() -> None:
    p = user(step=Step.REGISTERED, attempts=2)
    decision = settle(p, Advance(p.evolve(step=Step.NEW), ErrorCode.OTP_REJECTED, "no"), POLICY)
    assert decision.outcome is Outcome.FAILED
    assert decision.state.step is Step.FAILED
    assert decision.state.failed_at is Step.REGISTERED
    assert decision.failure is not None
    assert decision.failure.reason is ProvisioningFailureReason.REGISTRATION_FAILED
    assert decision.failure.attempts == 3


@pytest.mark.parametrize(
    ("code", "step", "reason"),
    [
        (ErrorCode.OPEX_UNAVAILABLE, Step.LOGGED_IN, ProvisioningFailureReason.OPEX_UNAVAILABLE),
        (ErrorCode.OPEX_RATE_LIMITED, Step.NEW, ProvisioningFailureReason.OPEX_UNAVAILABLE),
        (ErrorCode.OPEX_AMBIGUOUS, Step.VERIFIED, ProvisioningFailureReason.OPEX_UNAVAILABLE),
        (ErrorCode.LOGIN_REFUSED, Step.CONFIRMED, ProvisioningFailureReason.LOGIN_FAILED),
        (ErrorCode.WALLETS_MISSING, Step.API_KEY, ProvisioningFailureReason.WALLETS_MISSING),
        (ErrorCode.OPEX_REFUSED, Step.LOGGED_IN, ProvisioningFailureReason.API_KEY_FAILED),
        (ErrorCode.KEY_REJECTED, Step.API_KEY, ProvisioningFailureReason.API_KEY_FAILED),
        (ErrorCode.OPEX_REFUSED, Step.VERIFIED, ProvisioningFailureReason.REGISTRATION_FAILED),
        (ErrorCode.INTERNAL_ERROR, Step.NEW, ProvisioningFailureReason.RETRIES_EXHAUSTED),
    ],
)
def test_settle_when_retries_run_out_then_the_reason_names_the_cause(
    code: ErrorCode, step: Step, reason: ProvisioningFailureReason
) -> None:
    decision = settle(user(step=step, attempts=2), Retry(code, "boom"), POLICY)
    assert decision.outcome is Outcome.FAILED
    assert decision.failure is not None
    assert decision.failure.reason is reason
    assert decision.failure.message == f"gave up after 3 attempts at {step}: boom"
    assert decision.state.failure_reason is reason
    assert decision.state.last_error_code == code


def test_settle_when_a_retry_is_left_then_wait_with_backoff() -> None:
    decision = settle(user(), Retry(ErrorCode.OPEX_UNAVAILABLE, "down"), POLICY, rng=lambda: 1.0)
    assert decision.outcome is Outcome.WAIT
    assert decision.delay_s == 2.0
    assert decision.state.attempts == 1
    assert decision.state.step is Step.NEW


def test_settle_when_opex_refuses_for_good_then_failed_at_once() -> None:
    p = user(step=Step.NEW, pending=SecretStr("123456"))
    decision = settle(
        p, Fail(ProvisioningFailureReason.REGISTRATION_FAILED, "otp 123456 refused"), POLICY
    )
    assert decision.outcome is Outcome.FAILED
    assert decision.state.pending is None
    assert decision.failure is not None
    assert decision.failure.message == "otp [redacted] refused"
    assert decision.failure.attempts == 1
    assert decision.state.last_error_code == "REGISTRATION_FAILED"


@pytest.mark.parametrize(
    ("attempt", "rng", "expected"),
    [(1, 0.0, 1.0), (1, 1.0, 2.0), (2, 0.0, 2.0), (2, 1.0, 4.0), (3, 1.0, 5.0), (40, 0.5, 3.75)],
)
def test_delay_when_attempts_grow_then_equal_jitter_up_to_the_cap(
    attempt: int, rng: float, expected: float
) -> None:
    assert POLICY.delay(attempt, rng=lambda: rng) == expected


def test_delay_when_opex_says_retry_after_then_at_least_that_up_to_the_cap() -> None:
    assert POLICY.delay(1, at_least=3.0, rng=lambda: 0.0) == 3.0
    assert POLICY.delay(1, at_least=60.0, rng=lambda: 0.0) == 5.0


def test_policy_when_nonsense_then_refused() -> None:
    with pytest.raises(ValueError, match="max_attempts"):
        RetryPolicy(max_attempts=0)


def test_scrub_when_a_text_holds_secrets_then_they_are_replaced_and_it_is_bounded() -> None:
    text = scrub("pw=hunter22 key=abcd" + "x" * 2000, [SecretStr("hunter22"), "abcd", None, "ab"])
    assert text.startswith("pw=[redacted] key=[redacted]")
    assert len(text) == 1000


def test_repr_when_a_state_holds_secrets_then_none_shows() -> None:
    p = user(
        pending=SecretStr("otp-991122"),
        password=SecretStr("Pa55word!Pa55word"),
        api_key=ApiKey("key-id-123456", SecretStr("api-secret-xyz")),
    )
    text = repr(p) + str(p)
    for secret in ("otp-991122", "Pa55word!Pa55word", "api-secret-xyz"):
        assert secret not in text
    assert p.secrets() == (p.pending, p.password, p.api_key.secret if p.api_key else None)
