"""make run's restart policy: a service that exits is restarted, within a limit."""

from __future__ import annotations

from opexbridge.devrun import RestartPolicy


def test_restart_when_within_limit_then_yes_and_old_exits_forgotten() -> None:
    policy = RestartPolicy(limit=2, window_s=10)
    assert policy.may_restart("risk_engine", 0.0)
    assert policy.may_restart("risk_engine", 1.0)
    assert not policy.may_restart("risk_engine", 2.0)  # a third exit within 10 s
    assert policy.may_restart("notifier", 2.0)  # per service
    assert policy.may_restart("risk_engine", 30.0)  # the old exits left the window
