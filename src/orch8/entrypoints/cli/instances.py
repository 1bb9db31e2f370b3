"""`orch8 instances start|list|show|signal` (and `watch`, in watch.py)."""

from __future__ import annotations

import asyncio
from typing import Any

import click

from orch8.client import Orch8Client
from orch8.entrypoints.cli.common import (
    Remote,
    json_object,
    json_value,
    remote_options,
    run,
)
from orch8.entrypoints.cli.render import compact, emit_json, fields, table, tree_rows
from orch8.entrypoints.cli.watch import watch

STATES = ("scheduled", "running", "waiting", "paused", "completed", "failed", "cancelled")
BUILT_IN_SIGNALS = ("pause", "resume", "cancel", "update_context")


@click.group()
def instances() -> None:
    """Start, list, inspect, signal and follow instances."""


instances.add_command(watch)


@instances.command("start")
@remote_options
@click.argument("name")
@click.option(
    "--data",
    default="{}",
    callback=json_object,
    help="The instance's context.data: a JSON object, or @FILE to read it from a file.",
)
@click.option("--namespace", default="default", show_default=True)
@click.option(
    "--version",
    type=click.IntRange(min=1),
    help="This version of the sequence (default: the highest not deprecated).",
)
@click.option("--idempotency-key", help="Start nothing if an instance has this key already.")
@click.option("-q", "--quiet", is_flag=True, help="Print only the instance id.")
def start(
    remote: Remote,
    name: str,
    data: dict[str, Any],
    namespace: str,
    version: int | None,
    idempotency_key: str | None,
    quiet: bool,
) -> None:
    """Start an instance of the sequence NAME (resolved in --tenant and --namespace)."""

    async def begin(client: Orch8Client) -> dict[str, Any]:
        sequence = await client.get_sequence_by_name(
            remote.tenant, name, namespace=namespace, version=version
        )
        created = await client.create_instance(
            str(sequence["id"]),
            tenant_id=remote.tenant,
            namespace=namespace,
            data=data,
            idempotency_key=idempotency_key,
        )
        return {
            "id": created.id,
            "deduplicated": created.deduplicated,
            "sequence_id": sequence["id"],
            "name": sequence.get("name"),
            "version": sequence.get("version"),
        }

    started = run(remote, begin)
    if remote.as_json:
        emit_json(started)
    elif quiet:
        click.echo(started["id"])
    else:
        verb = "already started" if started["deduplicated"] else "started"
        click.echo(f"{verb} {started['id']} ({started['name']} v{started['version']})")


def _states(ctx: click.Context, param: click.Parameter, values: tuple[str, ...]) -> list[str]:
    wanted = [state.strip() for value in values for state in value.split(",") if state.strip()]
    unknown = sorted(set(wanted) - set(STATES))
    if unknown:
        raise click.BadParameter(
            f"unknown state {', '.join(unknown)} (one of {', '.join(STATES)})", ctx, param
        )
    return wanted


@instances.command("list")
@remote_options
@click.option(
    "--state",
    "states",
    multiple=True,
    callback=_states,
    help="Only these states (repeat, or separate with commas).",
)
@click.option("--namespace", help="Only this namespace.")
@click.option("--sequence-id", help="Only instances of this sequence version.")
@click.option("--limit", type=click.IntRange(1, 1000), default=100, show_default=True)
@click.option("--offset", type=click.IntRange(min=0), default=0, show_default=True)
@click.option("-q", "--quiet", is_flag=True, help="Print only the ids, one per line.")
def list_instances(
    remote: Remote,
    states: list[str],
    namespace: str | None,
    sequence_id: str | None,
    limit: int,
    offset: int,
    quiet: bool,
) -> None:
    """List the tenant's instances, newest first."""
    page = run(
        remote,
        lambda client: client.list_instances(
            namespace=namespace, sequence_id=sequence_id, states=states, offset=offset, limit=limit
        ),
    )
    if remote.as_json:
        emit_json(page)
        return
    if quiet:
        for item in page["items"]:
            click.echo(item.get("id"))
        return
    rows = [
        (i.get("id"), i.get("state"), i.get("namespace"), i.get("sequence_id"), i.get("updated_at"))
        for i in page["items"]
    ]
    click.echo(table(("ID", "STATE", "NAMESPACE", "SEQUENCE", "UPDATED"), rows))
    if page["has_more"]:
        click.echo(f"(more: --offset {offset + limit})", err=True)


@instances.command("show")
@remote_options
@click.argument("instance_id")
def show(remote: Remote, instance_id: str) -> None:
    """An instance: its state, context data, execution tree and block outputs."""

    async def read(client: Orch8Client) -> dict[str, Any]:
        instance, tree, outputs = await asyncio.gather(
            client.get_instance(instance_id),
            client.get_tree(instance_id),
            client.get_outputs(instance_id),
        )
        return {"instance": instance, "tree": tree, "outputs": outputs}

    found = run(remote, read)
    if remote.as_json:
        emit_json(found)
        return
    instance = found["instance"]
    context = instance.get("context") or {}
    summary = [
        ("id", instance.get("id")),
        ("state", instance.get("state")),
        ("sequence", instance.get("sequence_id")),
        ("tenant", instance.get("tenant_id")),
        ("namespace", instance.get("namespace")),
        ("priority", instance.get("priority")),
        ("next fire", instance.get("next_fire_at")),
        ("created", instance.get("created_at")),
        ("updated", instance.get("updated_at")),
    ]
    if instance.get("parent_instance_id"):
        summary.append(("parent", instance.get("parent_instance_id")))
    summary.append(("data", compact(context.get("data", {}), 200)))
    click.echo(fields(summary))
    click.echo("\ntree:")
    rows = [
        (
            "  " * depth + str(node.get("block_id")),
            node.get("block_type"),
            node.get("state"),
            node.get("started_at"),
            node.get("completed_at"),
        )
        for depth, node in tree_rows(found["tree"])
    ]
    click.echo(_indent(table(("BLOCK", "TYPE", "STATE", "STARTED", "COMPLETED"), rows)))
    click.echo("\noutputs:")
    if not found["outputs"]:
        click.echo("  (none)")
        return
    outputs = [
        (o.get("block_id"), o.get("attempt"), o.get("created_at"), o.get("output"))
        for o in found["outputs"]
    ]
    click.echo(_indent(table(("BLOCK", "ATTEMPT", "CREATED", "OUTPUT"), outputs)))


def _indent(text: str) -> str:
    return "\n".join("  " + line for line in text.splitlines())


@instances.command("signal")
@remote_options
@click.argument("instance_id")
@click.argument("signal_type", metavar="TYPE")
@click.option(
    "--payload",
    callback=json_value,
    help='The signal\'s payload as JSON (update_context: {"data": {...}}), or @FILE.',
)
def signal(remote: Remote, instance_id: str, signal_type: str, payload: Any) -> None:
    """Send a signal: pause, resume, cancel, update_context, or any other name as a
    custom signal (e.g. human_input:<block_id> with --payload '{"value": ...}')."""
    if not signal_type.strip():
        raise click.BadParameter("must not be empty", param_hint="TYPE")
    signal_id = run(remote, lambda client: client.send_signal(instance_id, signal_type, payload))
    wire: Any = signal_type if signal_type in BUILT_IN_SIGNALS else {"custom": signal_type}
    if remote.as_json:
        emit_json({"signal_id": signal_id, "instance_id": instance_id, "signal_type": wire})
    else:
        click.echo(f"sent {signal_type} to {instance_id} (signal {signal_id})")
