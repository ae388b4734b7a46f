"""The limits in force: a global `RiskLimits` and per-user `LimitOverrides` merged over
it, both changeable at run time; a change applies from the next command on."""

from __future__ import annotations

from services.risk_engine.config import LimitOverrides, RiskLimits

__all__ = ["Limits"]


class Limits:
    """Global limits and per-user overrides; `for_user` is what a decision reads."""

    __slots__ = ("_cache", "_global", "_overrides")

    def __init__(
        self,
        global_limits: RiskLimits | None = None,
        overrides: dict[str, LimitOverrides] | None = None,
    ) -> None:
        self._global = global_limits if global_limits is not None else RiskLimits()
        self._overrides: dict[str, LimitOverrides] = {}
        self._cache: dict[str, RiskLimits] = {}
        for user_id, user_overrides in (overrides or {}).items():
            self.set_user(user_id, user_overrides)

    @property
    def global_limits(self) -> RiskLimits:
        return self._global

    def overrides(self, user_id: str) -> LimitOverrides | None:
        return self._overrides.get(user_id)

    def for_user(self, user_id: str) -> RiskLimits:
        """The user's limits: the global ones with their overrides."""
        limits = self._cache.get(user_id)
        if limits is None:
            overrides = self._overrides.get(user_id)
            limits = self._global if overrides is None else overrides.apply(self._global)
            self._cache[user_id] = limits
        return limits

    def set_global(self, limits: RiskLimits) -> None:
        """Replace the global limits (every user's overrides stay on top of them)."""
        self._global = limits
        self._cache.clear()

    def set_user(self, user_id: str, overrides: LimitOverrides | None) -> None:
        """Set (None: clear) a user's overrides; `ValueError` if out of range."""
        if overrides is None:
            self._overrides.pop(user_id, None)
        else:
            overrides.apply(self._global)
            self._overrides[user_id] = overrides
        self._cache.pop(user_id, None)
