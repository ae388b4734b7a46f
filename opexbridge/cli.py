"""``opexbridge``: the suite's ops command."""

from __future__ import annotations

import asyncio

import typer
from aiokafka.admin import AIOKafkaAdminClient
from rich.console import Console
from rich.table import Table

from opexbridge import dlq, generate, publish, risk, tail, top
from opexbridge.demo import demo_command
from opexbridge.registry import with_migrations
from opexbridge.users import users_app
from shared.db import DatabaseSettings, migrate
from shared.messaging import KafkaSettings, apply_topics, topic_specs
from shared.messaging.topics import TopicReport, describe

app = typer.Typer(help="Ops tools for opex-bridge.", no_args_is_help=True)
topics_app = typer.Typer(help="The suite's Kafka topics, declared in shared/messaging/topics.py.")
app.add_typer(topics_app, name="topics")
app.add_typer(risk.app, name="risk")
app.add_typer(users_app, name="users")
app.add_typer(dlq.app, name="dlq")
app.add_typer(publish.app, name="publish")
app.add_typer(generate.app, name="generate")
app.command("tail")(tail.tail_command)
app.command("top")(top.top_command)
app.command("demo")(demo_command)
console = Console()


async def _admin() -> AIOKafkaAdminClient:
    admin = AIOKafkaAdminClient(**KafkaSettings().aiokafka_kwargs())
    await admin.start()
    return admin


async def _apply(fix: bool, prefix: str | None) -> TopicReport:
    admin = await _admin()
    try:
        return await apply_topics(admin, topic_specs(prefix=prefix), fix=fix)
    finally:
        await admin.close()


@topics_app.command("apply")
def topics_apply(
    fix: bool = typer.Option(False, help="Add missing partitions and reset drifted configs."),
    prefix: str | None = typer.Option(
        None, help="Topic name prefix (default OPEXBRIDGE_TOPIC_PREFIX)."
    ),
) -> None:
    """Create missing topics and report drift in existing ones. Safe to run again."""
    report = asyncio.run(_apply(fix, prefix))
    for name in report.created:
        console.print(f"[green]created[/]   {name}")
    for name in report.unchanged:
        console.print(f"[dim]in place[/]  {name}")
    for drift in report.drift:
        mark = "[yellow]fixed[/]  " if drift in report.fixed else "[red]drift[/]  "
        console.print(f"{mark}   {drift}")
    unfixed = [d for d in report.drift if d not in report.fixed]
    console.print(
        f"{len(report.created)} created, {len(report.unchanged)} in place, "
        f"{len(unfixed)} drifted{' (run with --fix)' if unfixed and not fix else ''}"
    )
    if unfixed:
        raise typer.Exit(3)


@topics_app.command("list")
def topics_list(prefix: str | None = typer.Option(None)) -> None:
    """The declared topics and what the cluster has."""

    async def run() -> tuple[dict[str, int], dict[str, dict[str, str]]]:
        admin = await _admin()
        try:
            existing = set(await admin.list_topics())
            return await describe(
                admin, [s.name for s in topic_specs(prefix=prefix) if s.name in existing]
            )
        finally:
            await admin.close()

    partitions, configs = asyncio.run(run())
    table = Table("topic", "key", "partitions (spec/actual)", "cleanup", "retention", "state")
    for spec in topic_specs(prefix=prefix):
        actual = partitions.get(spec.name)
        cfg = configs.get(spec.name, {})
        table.add_row(
            spec.name,
            spec.key,
            f"{spec.partitions}/{actual if actual is not None else '-'}",
            cfg.get("cleanup.policy", "-"),
            cfg.get("retention.ms", "-"),
            "missing" if actual is None else "ok",
        )
    console.print(table)


@app.command("migrate")
def migrate_all() -> None:
    """Apply every service's database migrations (each in its own schema)."""
    url = DatabaseSettings().database_url
    for service in with_migrations():
        migrate(url, service.schema, service.migrations)
        console.print(f"[green]migrated[/]  {service.schema}")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
