"""The `orch8` command (click).

- `serve`, `migrate` (server.py): run the engine's own process;
- `sequences apply|list` (sequences.py), `instances start|list|show|signal|watch`
  (instances.py, watch.py): a client of a running server over its REST API, through
  `orch8.client` only (common.py: the shared options and exit codes, render.py: tables
  and JSON).

Exit codes are listed in `common.ExitCode` and docs/cli.md.
"""

from __future__ import annotations

from collections.abc import Sequence

import click

from orch8.entrypoints.cli.instances import instances
from orch8.entrypoints.cli.sequences import sequences
from orch8.entrypoints.cli.server import migrate, serve


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="orch8", prog_name="orch8")
def cli() -> None:
    """orch8: a durable workflow engine, and a client of its REST API."""


cli.add_command(serve)
cli.add_command(migrate)
cli.add_command(sequences)
cli.add_command(instances)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; the exit code (`sys.exit(main())`)."""
    try:
        cli.main(args=None if argv is None else list(argv), prog_name="orch8")
    except SystemExit as exc:
        if exc.code is None or isinstance(exc.code, int):
            return exc.code or 0
        click.echo(exc.code, err=True)
        return 1
    return 0
