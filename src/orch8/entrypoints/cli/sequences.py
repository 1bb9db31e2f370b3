"""`orch8 sequences apply|list`: register sequence definitions and list the versions."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from orch8.client import Orch8Client, Orch8Error
from orch8.entrypoints.cli.common import ExitCode, Failure, Remote, remote_options, run
from orch8.entrypoints.cli.render import emit_json, table


@click.group()
def sequences() -> None:
    """Register and list sequences."""


def definition_files(path: Path) -> list[Path]:
    """The file itself, or every `*.json` directly in the directory, by name."""
    if not path.is_dir():
        return [path]
    found = sorted(p for p in path.glob("*.json") if p.is_file())
    if not found:
        raise Failure(f"{path}: no *.json files", ExitCode.USAGE)
    return found


def read_definition(path: Path) -> dict[str, Any]:
    """One sequence definition; unreadable or not a JSON object is a usage error."""
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise Failure(f"{path}: {exc.strerror or exc}", ExitCode.USAGE) from None
    except ValueError as exc:
        raise Failure(f"{path}: not valid JSON: {exc}", ExitCode.USAGE) from None
    if not isinstance(value, dict):
        raise Failure(f"{path}: must be a JSON object (a sequence definition)", ExitCode.USAGE)
    return value


@sequences.command("apply")
@remote_options
@click.argument("path", type=click.Path(exists=True, path_type=Path))
def apply(remote: Remote, path: Path) -> None:
    """Register the sequence in PATH, or every *.json in the directory PATH.

    A sequence whose (tenant, namespace, name) exists gets a new version. Every file is
    read and checked to be a JSON object before anything is sent; the first file the
    server refuses stops the run (those before it stay registered)."""
    files = definition_files(path)
    definitions = [(file, read_definition(file)) for file in files]
    applied: list[dict[str, Any]] = []

    async def register(client: Orch8Client) -> None:
        with click.progressbar(
            length=len(definitions), label="applying", file=sys.stderr, hidden=len(files) == 1
        ) as bar:
            for file, definition in definitions:
                try:
                    created = await client.get_sequence(await client.create_sequence(definition))
                except Orch8Error as exc:
                    raise Failure.of(exc, str(file)) from None
                applied.append(
                    {
                        "file": str(file),
                        "id": created.get("id"),
                        "tenant_id": created.get("tenant_id"),
                        "namespace": created.get("namespace"),
                        "name": created.get("name"),
                        "version": created.get("version"),
                    }
                )
                bar.update(1)

    try:
        run(remote, register)
    finally:
        if remote.as_json:
            emit_json(applied)
        elif applied:
            keys = ("file", "name", "version", "namespace", "id")
            click.echo(table([k.upper() for k in keys], ([a[k] for k in keys] for a in applied)))


@sequences.command("list")
@remote_options
@click.option("--namespace", help="Only this namespace.")
@click.option("--limit", type=click.IntRange(1, 1000), default=100, show_default=True)
@click.option("--offset", type=click.IntRange(min=0), default=0, show_default=True)
def list_sequences(remote: Remote, namespace: str | None, limit: int, offset: int) -> None:
    """List the tenant's sequence versions, newest first."""
    page = run(
        remote,
        lambda client: client.list_sequences(namespace=namespace, offset=offset, limit=limit),
    )
    if remote.as_json:
        emit_json(page)
        return
    rows = [
        (
            s.get("name"),
            s.get("version"),
            s.get("namespace"),
            "deprecated" if s.get("deprecated") else s.get("status"),
            s.get("created_at"),
            s.get("id"),
        )
        for s in page["items"]
    ]
    click.echo(table(("NAME", "VERSION", "NAMESPACE", "STATUS", "CREATED", "ID"), rows))
    if page["has_more"]:
        click.echo(f"(more: --offset {offset + limit})", err=True)
