"""Where each service keeps what the ops tools need (schema, migrations)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class ServiceInfo:
    name: str
    schema: str

    @property
    def migrations(self) -> Path:
        return REPO / "services" / self.name / "migrations" / "versions"


SERVICES: tuple[ServiceInfo, ...] = tuple(
    ServiceInfo(name, name) for name in ("user_sync", "risk_engine", "order_gateway", "notifier")
)


def with_migrations() -> list[ServiceInfo]:
    return [service for service in SERVICES if service.migrations.is_dir()]
