"""`Provisioner` step by step against an in-memory OPEX: the happy path, every step
repeated after a crash, OPEX's refusals (OTP, token, existing account, username, key
limit), lost answers, outages and rate limits, and no secret in any text it produces."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from pydantic import SecretStr
from structlog.testing import capture_logs

from services.user_sync.domain.password import is_strong
from services.user_sync.domain.provisioning import (
    TERMINAL,
    Decision,
    ErrorCode,
    Outcome,
    Provisioning,
    RetryPolicy,
    Step,
    settle,
)
from services.user_sync.handlers import Provisioner, StepSession
from shared.contracts import ProvisioningFailureReason
from shared.opex import OpexRateLimited, OpexRefused, OpexUnauthenticated
from tests.unit.user_sync.fakes import FakeOpex, down, new_user

POLICY = RetryPolicy(max_attempts=4, base_delay_s=1.0, max_delay_s=10.0)
ORDER = [
    Step.REGISTERED,
    Step.VERIFIED,
    Step.CONFIRMED,
    Step.LOGGED_IN,
    Step.API_KEY,
    Step.PROVISIONED,
]


async def run(
    opex: FakeOpex,
    p: Provisioning,
    *,
    session: StepSession | None = None,
    policy: RetryPolicy = POLICY,
    until: Callable[[Decision], bool] = lambda d: d.outcome is Outcome.WAIT,
) -> tuple[Provisioning, list[Decision]]:
    """Step (and settle) like the worker does, until terminal or ``until``."""
    provisioner = Provisioner(opex)
    session = session or StepSession()
    decisions: list[Decision] = []
    while p.step not in TERMINAL:
        decision = settle(p, await provisioner.step(p, session), policy, rng=lambda: 0.5)
        decisions.append(decision)
        p = decision.state
        if until(decision):
            break
    return p, decisions


async def provisioned(opex: FakeOpex, p: Provisioning) -> Provisioning:
    state, _ = await run(opex, p)
    assert state.step is Step.PROVISIONED, state.last_error
    return state


def assert_one_account_one_usable_key(opex: FakeOpex, state: Provisioning) -> None:
    accounts = [u for u in opex.users.values() if u.username == state.email]
    assert len(accounts) == 1
    assert str(state.opex_user_id) == accounts[0].uuid
    assert state.api_key is not None
    usable = [
        k.key_id for k in opex.keys_of(accounts[0].uuid) if k.key_id not in state.abandoned_key_ids
    ]
    assert usable == [state.api_key.key]


async def test_step_when_opex_answers_then_the_user_walks_every_step_to_provisioned() -> None:
    opex = FakeOpex()
    state, decisions = await run(opex, new_user())
    assert [d.state.step for d in decisions] == ORDER
    assert [d.outcome for d in decisions] == [Outcome.CONTINUE] * 5 + [Outcome.PROVISIONED]
    assert opex.calls == ["register", "verify", "confirm", "login", "create_api_key", "account"]
    assert_one_account_one_usable_key(opex, state)
    assert state.password is not None
    assert is_strong(state.password.get_secret_value(), min_length=20)
    assert state.pending is None
    assert {w.asset: w.free for w in state.wallets} == {"USDT": 0, "BTC": 0, "ETH": 0}
    assert state.attempts == 0
    assert state.adopted is False


@pytest.mark.parametrize("crash_at", range(6), ids=lambda i: f"after-{ORDER[i]}-call")
async def test_step_when_a_step_ran_but_its_outcome_was_never_recorded_then_one_account(
    crash_at: int,
) -> None:
    """A crash between OPEX's answer and the commit: the step ran on OPEX, the state
    did not move. Resuming from the old state (a new process: no session) still ends
    with one account; only a lost API key answer leaves an (abandoned) extra key."""
    opex = FakeOpex()
    state = new_user()
    if crash_at:
        state, _ = await run(opex, state, until=lambda d: d.state.step is ORDER[crash_at - 1])
    assert state.step is ([Step.NEW, *ORDER][crash_at])
    await Provisioner(opex).step(state, StepSession())  # ran on OPEX, never recorded
    final = await provisioned(opex, state)
    assert_one_account_one_usable_key(opex, final)
    lost_key = ORDER[crash_at] is Step.API_KEY
    assert len(final.abandoned_key_ids) == (1 if lost_key else 0)
    [account] = [u for u in opex.users.values() if u.username == final.email]
    assert len(opex.keys_of(account.uuid)) == (2 if lost_key else 1)


async def test_step_when_the_otp_is_no_longer_accepted_then_register_again_and_finish() -> None:
    opex = FakeOpex()
    state, _ = await run(opex, new_user(), until=lambda d: d.state.step is Step.REGISTERED)
    opex.fail("verify", OpexRefused("OTP is expired", code=5017, name="ExpiredOTP"))
    state, decisions = await run(opex, state, until=lambda d: True)
    assert decisions[0].state.step is Step.NEW
    assert decisions[0].state.last_error_code == ErrorCode.OTP_REJECTED
    assert decisions[0].state.attempts == 1
    final = await provisioned(opex, state)
    assert_one_account_one_usable_key(opex, final)


async def test_step_when_the_confirm_answer_is_lost_then_a_login_finds_the_account() -> None:
    opex = FakeOpex()
    state, _ = await run(opex, new_user(), until=lambda d: d.state.step is Step.VERIFIED)
    opex.lose_answer("confirm")
    state, decisions = await run(opex, state)
    assert decisions[-1].outcome is Outcome.WAIT
    assert state.last_error_code == ErrorCode.OPEX_AMBIGUOUS
    assert state.step is Step.VERIFIED
    state, decisions = await run(opex, state, until=lambda d: True)
    assert decisions[0].state.step is Step.LOGGED_IN  # token used; the password opens it
    final = await provisioned(opex, state)
    assert_one_account_one_usable_key(opex, final)


async def test_step_when_the_account_exists_with_our_password_then_it_is_adopted() -> None:
    opex = FakeOpex()
    state, _ = await run(opex, new_user(), until=lambda d: d.state.step is Step.CONFIRMED)
    state = state.evolve(step=Step.NEW)  # e.g. a row restored from an older backup
    final = await provisioned(opex, state)
    assert final.adopted is True
    assert opex.calls.count("register") == 2
    assert_one_account_one_usable_key(opex, final)


@pytest.mark.parametrize("password", [None, "not-the-right-one"])
async def test_step_when_the_account_exists_and_is_not_ours_then_fail_at_once(
    password: str | None,
) -> None:
    opex = FakeOpex()
    foreign = opex.add_enabled("ada@example.com", "theirs")
    p = new_user()
    if password is not None:
        p = p.evolve(password=SecretStr(password))
    state, decisions = await run(opex, p)
    assert state.step is Step.FAILED
    assert state.failed_at is Step.NEW
    assert [d.outcome for d in decisions] == [Outcome.FAILED]
    failure = decisions[0].failure
    assert failure is not None
    assert failure.reason is ProvisioningFailureReason.REGISTRATION_FAILED
    assert "not taken over" in failure.message
    assert failure.attempts == 1
    assert opex.keys_of(foreign.uuid) == []
    assert foreign.password == "theirs"


async def test_step_when_opex_refuses_the_email_then_fail_at_once_with_a_clear_reason() -> None:
    state, decisions = await run(FakeOpex(), new_user(email="bad@example.com"))
    assert state.step is Step.FAILED
    failure = decisions[-1].failure
    assert failure is not None
    assert failure.reason is ProvisioningFailureReason.REGISTRATION_FAILED
    assert failure.message == "OPEX refused the email as a username (5014 InvalidUsername)"


async def test_step_when_the_key_answer_is_lost_then_the_key_is_abandoned_and_a_new_one_made() -> (
    None
):
    opex = FakeOpex()
    state, _ = await run(opex, new_user(), until=lambda d: d.state.step is Step.LOGGED_IN)
    planned = state.planned_key_id
    assert planned is not None
    opex.lose_answer("create_api_key")
    state, _ = await run(opex, state)
    assert state.step is Step.LOGGED_IN
    assert state.planned_key_id == planned  # the same id is tried again
    final = await provisioned(opex, state)
    assert final.abandoned_key_ids == (planned,)
    assert final.api_key is not None
    assert final.api_key.key != planned
    assert_one_account_one_usable_key(opex, final)


async def test_step_when_opex_ignores_the_key_id_then_the_key_it_made_is_used() -> None:
    opex = FakeOpex()
    opex.ignore_key_id = True
    final = await provisioned(opex, new_user())
    assert_one_account_one_usable_key(opex, final)


async def test_step_when_opex_refuses_the_stored_key_then_a_new_key_replaces_it() -> None:
    opex = FakeOpex()
    state = await provisioned(opex, new_user())
    assert state.api_key is not None
    opex.keys[state.api_key.key].enabled = False
    resynced = state.evolve(step=Step.API_KEY)
    waiting, decisions = await run(opex, resynced)
    assert decisions[-1].outcome is Outcome.WAIT  # refused once: ask again later
    assert waiting.last_error_code == ErrorCode.KEY_REJECTED
    assert waiting.api_key == state.api_key
    again = await provisioned(opex, waiting)  # refused twice: replaced
    assert again.api_key is not None
    assert again.api_key.key != state.api_key.key
    assert again.abandoned_key_ids == (state.api_key.key,)
    assert again.attempts == 2


async def test_step_when_opex_refuses_the_key_once_then_the_key_is_kept() -> None:
    opex = FakeOpex()
    state = await provisioned(opex, new_user())
    opex.fail("account", OpexUnauthenticated(None, http_status=401))
    waiting, _ = await run(opex, state.evolve(step=Step.API_KEY))
    again = await provisioned(opex, waiting)
    assert again.api_key == state.api_key
    assert again.abandoned_key_ids == ()


async def test_step_when_the_session_expired_then_log_in_again_and_create_the_key() -> None:
    opex = FakeOpex()
    session = StepSession()
    state, _ = await run(
        opex, new_user(), session=session, until=lambda d: d.state.step is Step.LOGGED_IN
    )
    opex.access.clear()  # every access token expired
    final, decisions = await run(opex, state, session=session)
    assert decisions[0].state.last_error_code == ErrorCode.SESSION_EXPIRED
    assert final.step is Step.PROVISIONED


async def test_step_when_the_key_limit_is_reached_then_fail_with_api_key_failed() -> None:
    opex = FakeOpex()
    opex.fail("create_api_key", OpexRefused("limit", code=7007, name="APIKeyLimitReached"))
    state, decisions = await run(opex, new_user())
    assert state.step is Step.FAILED
    assert state.failed_at is Step.LOGGED_IN
    failure = decisions[-1].failure
    assert failure is not None
    assert failure.reason is ProvisioningFailureReason.API_KEY_FAILED


async def test_step_when_opex_is_down_then_retry_later_and_give_up_as_unavailable() -> None:
    opex = FakeOpex()
    opex.fail("register", down(), times=10)
    p = new_user()
    delays = []
    for attempt in range(1, 4):
        p, decisions = await run(opex, p)
        assert decisions[-1].outcome is Outcome.WAIT
        assert p.attempts == attempt
        assert p.last_error_code == ErrorCode.OPEX_UNAVAILABLE
        delays.append(decisions[-1].delay_s)
    assert delays == [0.75, 1.5, 3.0]  # equal jitter at rng 0.5: 3/4 of 1, 2, 4 s
    p, decisions = await run(opex, p)
    assert p.step is Step.FAILED
    failure = decisions[-1].failure
    assert failure is not None
    assert failure.reason is ProvisioningFailureReason.OPEX_UNAVAILABLE
    assert failure.attempts == 4
    assert failure.message == "gave up after 4 attempts at NEW: POST /x: OPEX unavailable: HTTP 503"


async def test_step_when_rate_limited_then_wait_at_least_retry_after() -> None:
    opex = FakeOpex()
    opex.fail("register", OpexRateLimited(7.0))
    p, decisions = await run(opex, new_user())
    assert p.last_error_code == ErrorCode.OPEX_RATE_LIMITED
    assert decisions[-1].delay_s == 7.0


async def test_step_when_wallets_do_not_show_then_retry_and_fail_as_wallets_missing() -> None:
    opex = FakeOpex(assets=("BTC",))
    p, _ = await run(opex, new_user())
    assert p.step is Step.API_KEY
    assert p.last_error_code == ErrorCode.WALLETS_MISSING
    for _ in range(3):
        p, decisions = await run(opex, p)
    assert p.step is Step.FAILED
    failure = decisions[-1].failure
    assert failure is not None
    assert failure.reason is ProvisioningFailureReason.WALLETS_MISSING


async def test_step_when_opex_refuses_unexpectedly_then_retry_and_fail_as_the_step() -> None:
    opex = FakeOpex()
    opex.fail("login", OpexRefused("odd", code=1020, name="InvalidRequestParam"), times=1)
    state, _ = await run(opex, new_user())
    assert state.step is Step.CONFIRMED
    assert state.last_error_code == ErrorCode.LOGIN_REFUSED
    opex.fail("login", OpexRefused("odd", code=1020, name="InvalidRequestParam"), times=3)
    for _ in range(3):
        state, decisions = await run(opex, state)
    assert state.step is Step.FAILED
    failure = decisions[-1].failure
    assert failure is not None
    assert failure.reason is ProvisioningFailureReason.LOGIN_FAILED


async def test_step_when_anything_goes_wrong_then_no_secret_in_any_text_or_log() -> None:
    opex = FakeOpex()
    with capture_logs() as logs:
        state, _ = await run(opex, new_user(), until=lambda d: d.state.step is Step.VERIFIED)
        opex.lose_answer("confirm")
        state, decisions = await run(opex, state)
        state, more = await run(opex, state, until=lambda d: d.state.step is Step.LOGGED_IN)
        opex.lose_answer("create_api_key")
        state, again = await run(opex, state)
        final, rest = await run(opex, state)
        opex.keys[final.api_key.key if final.api_key else ""].enabled = False
        waiting, refused = await run(opex, final.evolve(step=Step.API_KEY, attempts=0))
        rekeyed, last = await run(opex, waiting)
    assert rekeyed.step is Step.PROVISIONED
    assert final.password is not None
    secrets = [*opex.secrets_handed_out, final.password.get_secret_value()]
    texts = [repr(logs), repr(rekeyed), repr(final)]
    for decision in [*decisions, *more, *again, *rest, *refused, *last]:
        texts += [repr(decision), str(decision.state.last_error), repr(decision.failure)]
    blob = "\n".join(texts)
    assert [s for s in secrets if s in blob] == []


async def test_step_when_opex_echoes_a_secret_in_its_error_then_it_is_redacted() -> None:
    opex = FakeOpex()
    state, _ = await run(opex, new_user(), until=lambda d: d.state.step is Step.CONFIRMED)
    assert state.password is not None
    password = state.password.get_secret_value()
    opex.fail("login", OpexRefused(f"password {password} refused", code=1020, name="Odd"))
    state, decisions = await run(opex, state)
    assert state.last_error is not None
    assert "password [redacted] refused" in state.last_error
    assert password not in repr(decisions)


async def test_step_when_something_unexpected_breaks_then_it_counts_and_ends_exhausted() -> None:
    opex = FakeOpex()
    opex.fail("register", RuntimeError("a bug"), times=10)
    p = new_user()
    for _ in range(4):
        p, decisions = await run(opex, p)
    assert p.step is Step.FAILED
    failure = decisions[-1].failure
    assert failure is not None
    assert failure.reason is ProvisioningFailureReason.RETRIES_EXHAUSTED
    assert failure.message == "gave up after 4 attempts at NEW: RuntimeError at NEW"
