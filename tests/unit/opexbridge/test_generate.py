"""``opexbridge generate``: writes what changed, ``--check`` fails on a stale file."""

from __future__ import annotations

from pathlib import Path

import pytest
import typer

from opexbridge import generate


def test_write_files_writes_only_what_changed(tmp_path: Path) -> None:
    same, changed, missing = tmp_path / "a.json", tmp_path / "b.json", tmp_path / "c" / "d.json"
    same.write_text("same\n")
    changed.write_text("old\n")
    files = {same: "same\n", changed: "new\n", missing: "made\n"}
    assert generate.stale_files(files) == [changed, missing]
    assert generate.write_files(files) == [changed, missing]
    assert changed.read_text() == "new\n"
    assert missing.read_text() == "made\n"
    assert generate.stale_files(files) == []


def test_check_exits_1_on_a_stale_file(tmp_path: Path) -> None:
    path = tmp_path / "x.yaml"
    path.write_text("old\n")
    result = generate.Generated(files={path: "new\n"})
    with pytest.raises(typer.Exit) as exit_info:
        generate._run(result, check=True)
    assert exit_info.value.exit_code == 1
    assert path.read_text() == "old\n", "--check writes nothing"
    generate._run(result, check=False)
    assert path.read_text() == "new\n"
    generate._run(result, check=True)


def test_the_command_is_registered() -> None:
    from opexbridge.cli import app

    names = {group.name for group in app.registered_groups}
    assert "generate" in names
