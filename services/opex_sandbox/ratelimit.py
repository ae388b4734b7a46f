"""OPEX's per-user rate limits (api-app `RateLimitConfig`, `RateLimitCoordinatorService`,
`RateLimiterService`, `RateLimitPenaltyService`; data from `V3__insert_rate_limit_data.sql`).

* A request is limited when it is authenticated and its method and path (the path the api
  service sees, without the proxy's `/api`) match an endpoint rule; the rule names a group
  with `requests` per `window_s`.
* The bucket is per user, method and exact path (not per group): a Bucket4j bucket of
  `requests` tokens refilled greedily (continuously) at `requests / window_s`, forgotten (so
  full again) `window_s` after the last allowed request.
* An empty bucket is a violation: the user is blocked on that method and path for the
  group's next block step (60 s, 120 s, 180 s for LOW_IMPACT), and every request meanwhile
  is refused without touching the bucket. An allowed request `cooldown_s` after the last
  violation forgets one violation; the violation state is forgotten `block + cooldown_s`
  after the last violation.
* Refused: HTTP 429, code 1024 (`RateLimit`).

Time comes from an injected clock (seconds, monotonic).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

__all__ = ["Decision", "EndpointRule", "RateLimitGroup", "RateLimiter", "default_rules"]


@dataclass(frozen=True, slots=True)
class RateLimitGroup:
    name: str
    requests: int
    window_s: float
    block_steps_s: tuple[float, ...]
    cooldown_s: float


@dataclass(frozen=True, slots=True)
class EndpointRule:
    """`prefix` is a Spring `/x/**` pattern without the `/**`: it matches `/x` and `/x/...`."""

    prefix: str
    methods: frozenset[str]
    group: RateLimitGroup

    def matches(self, method: str, path: str) -> bool:
        if method not in self.methods:
            return False
        p = self.prefix
        return path == p or (path.startswith(p) and path[len(p)] == "/")


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    retry_after_s: float = 0.0


_ALLOW = Decision(True)


def default_rules(
    *,
    low_requests: int = 10,
    low_window_s: float = 60,
    low_block_steps_s: Sequence[float] = (60, 120, 180),
    low_cooldown_s: float = 300,
    admin_requests: int = 15,
    admin_window_s: float = 30,
    admin_block_steps_s: Sequence[float] = (60,),
    admin_cooldown_s: float = 120,
) -> list[EndpointRule]:
    """The rules OPEX ships that cover what the sandbox serves, highest priority first."""
    low = RateLimitGroup(
        "LOW_IMPACT", low_requests, low_window_s, tuple(low_block_steps_s), low_cooldown_s
    )
    admin = RateLimitGroup(
        "ADMIN", admin_requests, admin_window_s, tuple(admin_block_steps_s), admin_cooldown_s
    )
    return [
        EndpointRule("/opex/v1/admin", frozenset({"GET", "POST", "PUT", "DELETE"}), admin),
        EndpointRule("/opex/v1/order", frozenset({"GET", "POST", "PUT"}), low),
        EndpointRule("/opex/v1/wallet", frozenset({"GET"}), low),
        EndpointRule("/opex/v1/user", frozenset({"GET", "POST"}), low),
    ]


@dataclass(slots=True)
class _Bucket:
    tokens: float
    updated: float
    expires: float


@dataclass(slots=True)
class _Penalty:
    violations: int = 0
    last_violation: float = 0.0
    banned_until: float = 0.0
    expires: float = 0.0


@dataclass(slots=True)
class RateLimiter:
    rules: list[EndpointRule]
    clock: Callable[[], float] = time.monotonic
    enabled: bool = True
    _buckets: dict[tuple[str, str, str], _Bucket] = field(default_factory=dict)
    _penalties: dict[tuple[str, str, str], _Penalty] = field(default_factory=dict)

    def rule_for(self, method: str, path: str) -> EndpointRule | None:
        for rule in self.rules:
            if rule.matches(method, path):
                return rule
        return None

    def check(self, user: str, method: str, path: str) -> Decision:
        """Count one authenticated request; say whether it may proceed."""
        if not self.enabled:
            return _ALLOW
        rule = self.rule_for(method, path)
        if rule is None:
            return _ALLOW
        group = rule.group
        now = self.clock()
        key = (user, method, path)
        penalty = self._penalties.get(key)
        if penalty is not None and penalty.expires <= now:
            del self._penalties[key]
            penalty = None
        if penalty is not None and penalty.banned_until > now:
            return Decision(False, penalty.banned_until - now)

        rate = group.requests / group.window_s
        if len(self._buckets) > 10_000:
            self._prune(now)
        bucket = self._buckets.get(key)
        if bucket is None or bucket.expires <= now:
            bucket = self._buckets[key] = _Bucket(float(group.requests), now, 0.0)
        else:
            bucket.tokens = min(
                float(group.requests), bucket.tokens + (now - bucket.updated) * rate
            )
            bucket.updated = now
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            bucket.expires = now + group.window_s
            if (
                penalty is not None
                and penalty.violations > 0
                and now - penalty.last_violation >= group.cooldown_s
            ):
                penalty.violations -= 1
                penalty.expires = now + group.cooldown_s
            return _ALLOW

        if penalty is None:
            penalty = self._penalties[key] = _Penalty()
        penalty.violations += 1
        steps = group.block_steps_s
        block = steps[min(penalty.violations, len(steps)) - 1] if steps else 0.0
        penalty.last_violation = now
        penalty.banned_until = now + block
        penalty.expires = now + block + group.cooldown_s
        return Decision(False, block)

    def _prune(self, now: float) -> None:
        for k in [k for k, b in self._buckets.items() if b.expires <= now]:
            del self._buckets[k]
        for k in [k for k, p in self._penalties.items() if p.expires <= now]:
            del self._penalties[k]

    def reset(self) -> None:
        self._buckets.clear()
        self._penalties.clear()
