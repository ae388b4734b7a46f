"""``opexbridge generate``: the files made from the code, written or checked.

- ``asyncapi``: ``docs/asyncapi/<service>.json``, each service's AsyncAPI document
  (`opexbridge.asyncapi`);
- ``topics``: ``deploy/k8s/base/kafka-topics.yaml``, Strimzi KafkaTopics from the topic
  spec (`opexbridge.strimzi`);
- ``all``: both (``make docs``).

``--check`` writes nothing and exits 1 when a committed file differs from what the code
generates (the unit tests do the same check).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import typer
from rich.console import Console

from opexbridge.asyncapi import asyncapi_documents
from opexbridge.strimzi import TOPICS_FILE, kafka_topics_yaml

__all__ = ["Generated", "app", "generated_files", "stale_files", "write_files"]

REPO = Path(__file__).resolve().parent.parent
app = typer.Typer(help="Files generated from the code: AsyncAPI docs, Strimzi topics.")
console = Console()
CHECK = typer.Option(False, "--check", help="Write nothing; exit 1 if a file is out of date.")


@dataclass
class Generated:
    """What a generator made, by path, and what it skipped (with why)."""

    files: dict[Path, str] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)


def generated_files(*, asyncapi: bool = True, topics: bool = True) -> Generated:
    result = Generated()
    if asyncapi:
        documents, skipped = asyncapi_documents()
        result.files.update(documents)
        result.skipped.extend(f"asyncapi: {name} (no app or no broker yet)" for name in skipped)
    if topics:
        result.files[TOPICS_FILE] = kafka_topics_yaml()
    return result


def stale_files(files: Mapping[Path, str]) -> list[Path]:
    """The files whose content on disk is not ``files[path]`` (missing ones included)."""
    return [
        path
        for path, text in files.items()
        if not path.is_file() or path.read_text(encoding="utf-8") != text
    ]


def write_files(files: Mapping[Path, str]) -> list[Path]:
    """Write what changed; the paths written."""
    written = stale_files(files)
    for path in written:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(files[path], encoding="utf-8")
    return written


def _relative(path: Path) -> str:
    try:
        return str(path.relative_to(REPO))
    except ValueError:
        return str(path)


def _run(result: Generated, check: bool) -> None:
    for note in result.skipped:
        console.print(f"[dim]skipped[/]   {note}")
    if check:
        stale = stale_files(result.files)
        for path in stale:
            console.print(f"[red]stale[/]     {_relative(path)}")
        if stale:
            console.print("run `make docs` (opexbridge generate all) and commit the result")
            raise typer.Exit(1)
        console.print(f"{len(result.files)} generated files up to date")
        return
    written = write_files(result.files)
    for path in sorted(result.files):
        mark = "[green]written[/]  " if path in written else "[dim]unchanged[/]"
        console.print(f"{mark} {_relative(path)}")


@app.command("asyncapi")
def asyncapi_command(check: bool = CHECK) -> None:
    """docs/asyncapi/<service>.json from each service's FastStream broker."""
    _run(generated_files(topics=False), check)


@app.command("topics")
def topics_command(check: bool = CHECK) -> None:
    """deploy/k8s/base/kafka-topics.yaml (Strimzi KafkaTopic) from the topic spec."""
    _run(generated_files(asyncapi=False), check)


@app.command("all")
def all_command(check: bool = CHECK) -> None:
    """Every generated file."""
    _run(generated_files(), check)
