"""`orch8 instances watch ID`: follow an instance's live stream until it ends.

Prints each event of `GET /instances/{id}/stream` as it arrives (a line of text, or with
`--json` one JSON object per line) and exits when the `done` event comes: 0 when the
instance completed, 5 when it failed, 6 when it was cancelled. An unknown instance exits
3; a stream that ends before `done` (the server stopped) exits 1.
"""

from __future__ import annotations

import contextlib
from typing import Any

import click

from orch8.client import Orch8Client, ServerEvent
from orch8.entrypoints.cli.common import ExitCode, Failure, Remote, remote_options, run
from orch8.entrypoints.cli.render import compact, emit_json_line

OUTCOMES = {
    "completed": ExitCode.OK,
    "failed": ExitCode.FAILED,
    "cancelled": ExitCode.CANCELLED,
}
ERROR_REF = "__error__"  # output_ref of a failed attempt's output


def describe(name: str, data: Any) -> str:
    """One event as a line of text."""
    body = data if isinstance(data, dict) else {}
    if name == "state":
        return f"state   {body.get('state')}"
    if name == "output":
        block, attempt, output = body.get("block_id"), body.get("attempt"), body.get("output")
        if body.get("output_ref") == ERROR_REF and isinstance(output, dict):
            return f"error   {block} (attempt {attempt}): {compact(output.get('error'), 200)}"
        return f"output  {block} (attempt {attempt}): {compact(output, 200)}"
    if name == "done":
        return f"done    {body.get('state')}"
    return f"{name:<7} {compact(data, 200)}"


def outcome(event: ServerEvent, data: Any) -> ExitCode | None:
    """The exit code once the stream says the instance ended, else None (keep going)."""
    body = data if isinstance(data, dict) else {}
    if event.event == "done":
        return OUTCOMES.get(str(body.get("state")), ExitCode.SERVER)
    if event.event == "error":
        message = str(body.get("error", data))
        code = ExitCode.NOT_FOUND if "not found" in message else ExitCode.SERVER
        raise Failure(message, code)
    return None


@click.command("watch")
@remote_options
@click.argument("instance_id")
@click.option(
    "--poll-ms",
    type=click.IntRange(100, 5000),
    help="How often the server polls storage for changes made by other processes.",
)
def watch(remote: Remote, instance_id: str, poll_ms: int | None) -> None:
    """Print the instance's events until it ends; the exit code says how it ended
    (0 completed, 5 failed, 6 cancelled)."""

    async def follow(client: Orch8Client) -> ExitCode:
        events = client.stream_instance(instance_id, poll_ms=poll_ms)
        async with contextlib.aclosing(events):
            async for event in events:
                data = event.json()
                if remote.as_json:
                    emit_json_line({"event": event.event, "data": data})
                elif event.event != "error":  # told on stderr below
                    click.echo(describe(event.event, data))
                code = outcome(event, data)
                if code is not None:
                    return code
        raise Failure(f"the stream of {instance_id} ended before the instance did", ExitCode.SERVER)

    code = run(remote, follow)
    if code is not ExitCode.OK:
        raise click.exceptions.Exit(int(code))
