"""``looptool eval``: evaluate one checkpoint (a published checkpoint id, or a model folder) on BFCL v4.

The command is a thin wrapper around :func:`run_eval_command`, which resolves the checkpoint,
builds the policy backend, runs the suite, prints BFCL's summary table and the per-category table,
and writes the per-item results.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from common.logs import get_logger
from evaluation.heldout import heldout_toolmatch, load_heldout
from evaluation.report import category_table, summary_table
from evaluation.runner import EvalRun, evaluate, write_results
from evaluation.suite import load_suite, parse_categories
from looptool.cli.common import console, settings_of
from looptool.config import Settings

log = get_logger(__name__)


class CheckpointNotFoundError(LookupError):
    """Neither a model folder nor a checkpoint id published in this run."""


@dataclass(frozen=True)
class ResolvedCheckpoint:
    checkpoint_id: str
    uri: str
    round: int | None = None
    step: int | None = None


def served_initial_policy(reference: str, settings: Settings) -> ResolvedCheckpoint | None:
    """With a served policy (``[policy] backend = "openai"``): the initial policy when ``reference`` is
    the endpoint's ``model`` or the ``[policy] model_path`` folder, asked for by that ``model`` as the
    probe asks for it before the first checkpoint; None otherwise."""
    policy = settings.policy
    if policy.backend != "openai" or policy.endpoint is None:
        return None
    initial_folder = Path(policy.model_path).resolve() if policy.model_path else None
    path = Path(reference)
    if reference == policy.endpoint.model or (path.is_dir() and path.resolve() == initial_folder):
        return ResolvedCheckpoint(
            checkpoint_id=policy.endpoint.model, uri=str(initial_folder or policy.endpoint.model)
        )
    return None


def served_checkpoint_id(reference: str, served: Mapping[str, str | None]) -> str | None:
    """The id, among those an endpoint serves (id -> the weights' path it lists, or None), that
    ``reference`` names: that id itself; else the one served from that path (a vLLM LoRA adapter's
    ``root``); else the one named as the path's last part (a checkpoint folder, here or on the
    trainer's machine, served under its name). None when none is."""
    if reference in served:
        return reference
    wanted = {os.path.normpath(reference)}
    if Path(reference).exists():  # a path here, maybe relative: a server lists absolute ones
        wanted.add(str(Path(reference).resolve()))
    from_path = sorted(model for model, root in served.items() if root and os.path.normpath(root) in wanted)
    if from_path:
        return from_path[0]  # ids served from one folder serve the same weights
    name = Path(reference).name
    return name if name in served else None


async def served_checkpoint(reference: str, settings: Settings) -> ResolvedCheckpoint:
    """A served policy's checkpoint, looked up in what its endpoint lists (no broker needed): see
    :func:`served_checkpoint_id`; one it does not list is refused with the ids it serves."""
    from looptool.wiring import endpoint_backend

    assert settings.policy.endpoint is not None  # the settings refuse "openai" without it
    backend = endpoint_backend(settings.policy.endpoint, logprobs=False)
    try:
        served: dict[str, str | None] = await backend.served_models()
    finally:
        await backend.close()
    checkpoint_id = served_checkpoint_id(reference, served)
    if checkpoint_id is None:
        names = dict.fromkeys([reference, Path(reference).name])
        raise CheckpointNotFoundError(
            f"the policy's endpoint {backend.public_base_url} does not serve "
            f"{' or '.join(repr(name) for name in names)} (no model by that id, or served from that "
            f"path; it serves {sorted(served)})"
        )
    return ResolvedCheckpoint(checkpoint_id, uri=served[checkpoint_id] or reference)


async def resolve_checkpoint(reference: str, settings: Settings) -> ResolvedCheckpoint:
    """A served policy's checkpoint as its endpoint lists it (:func:`served_checkpoint`; the initial
    model: :func:`served_initial_policy`); otherwise a model folder as it is, or the run's
    CheckpointPublished with that checkpoint id."""
    initial = served_initial_policy(reference, settings)
    if initial is not None:
        return initial
    if settings.policy.backend == "openai":
        return await served_checkpoint(reference, settings)
    path = Path(reference)
    if path.is_dir():
        return ResolvedCheckpoint(checkpoint_id=path.resolve().name, uri=str(path.resolve()))
    if not settings.kafka.bootstrap_servers:
        raise CheckpointNotFoundError(
            f"{reference!r} is not a model folder, and no Kafka is configured to look it up "
            "as a checkpoint id"
        )
    from bus.kafka import replay

    found: Any = None
    known: list[str] = []
    async for batch in replay(settings.kafka, settings.run_id, ["checkpoints"]):
        for delivered in batch:
            payload = delivered.event.payload
            if delivered.event.event_type != "CheckpointPublished":
                continue
            known.append(payload.new_checkpoint_id)
            if payload.new_checkpoint_id == reference:
                found = payload
    if found is None:
        shown = ", ".join(known[-10:]) or "none"
        raise CheckpointNotFoundError(
            f"no model folder {reference!r} and no checkpoint with that id in run {settings.run_id!r} "
            f"(latest published: {shown})"
        )
    return ResolvedCheckpoint(found.new_checkpoint_id, found.uri, found.round, found.step)


def default_results_path(settings: Settings, checkpoint_id: str) -> Path:
    """Where ``looptool eval`` writes per-item results unless told: beside the evaluate stage's, under
    another name (``<checkpoint>.manual.jsonl``): the stage's file is what its CheckpointEvaluated
    event points to, and a spot check with ``--limit 5`` must not replace it."""
    safe = "".join(ch if ch.isalnum() or ch in "._-" else "_" for ch in checkpoint_id)
    return settings.eval.results_dir / settings.run_id / f"{safe}.manual.jsonl"


async def run_eval_command(
    settings: Settings,
    checkpoint: str,
    *,
    categories: str | None = None,
    limit: int | None = None,
    output: Path | None = None,
    max_new_tokens: int | None = None,
    batch_size: int | None = None,
    console: Console | None = None,
) -> EvalRun:
    """Resolve, load, evaluate, print and write; returns the evaluation.

    The policy's backend is built as the probe's and the evaluate stage's
    (:func:`looptool.wiring.policy_backend`, all of ``[policy]``): a local backend loads the
    checkpoint's folder; a served policy (``backend = "openai"``) is asked for the checkpoint by its
    id, as the probe asks for it (the endpoint serves each checkpoint under its id).
    """
    from looptool.wiring import policy_backend

    console = console or Console()
    chosen = parse_categories(categories if categories is not None else settings.eval.categories)
    items = load_suite(chosen, limit if limit is not None else settings.eval.limit)
    resolved = await resolve_checkpoint(checkpoint, settings)
    size = batch_size or settings.eval.batch_size or settings.policy.batch_size
    # Before the backend: a held-out file that does not load stops eval before a model loads.
    heldout = load_heldout(settings.eval.heldout_path) if settings.eval.heldout_path else None
    backend = policy_backend(
        settings, model_path=resolved.uri, model_id=resolved.checkpoint_id, batch_size=size
    )
    console.print(
        f"evaluating [bold]{resolved.checkpoint_id}[/] ({resolved.uri}) on {len(items)} BFCL items "
        f"from {len(chosen)} categories"
    )
    try:
        if backend.model_id != resolved.checkpoint_id:  # a served policy: switch to the checkpoint
            await backend.load(resolved.uri, resolved.checkpoint_id)
        run = await evaluate(
            backend,
            items,
            max_tokens=max_new_tokens or settings.eval.max_new_tokens,
            batch_size=size,
            current_time=settings.loop.current_time,
            limit=limit if limit is not None else settings.eval.limit,
            max_steps=settings.eval.max_steps,
            reading=settings.eval.output_reading,
        )
        score = (
            await heldout_toolmatch(
                backend,
                heldout.samples,
                max_tokens=max_new_tokens or settings.eval.max_new_tokens,
                batch_size=size,
                current_time=settings.loop.current_time,
            )
            if heldout is not None
            else None
        )
    finally:
        await backend.close()
    target = write_results(run.results, output or default_results_path(settings, resolved.checkpoint_id))
    console.print(summary_table(run.summary, model=resolved.checkpoint_id))
    console.print(category_table(run.summary, steps=run.steps()))
    if heldout is not None and score is not None:
        shown = f"{score.correct}/{score.total} = {100 * score.accuracy:.2f}%"
        console.print(f"held-out ToolMatch ({heldout.source}): {shown}")
    console.print(f"per-item results: {target}  ({run.wall_time_s:.1f} s)")
    return run


async def load_evaluations(settings: Settings) -> list[Any]:
    """Every CheckpointEvaluated payload of the run (replay of the evaluations topic, one per event id).

    For ``looptool stats`` and the demo report: pass the result to
    :func:`evaluation.report.rounds_table` and :func:`evaluation.report.plot_by_round`.
    """
    from bus.kafka import replay
    from schemas.events import CheckpointEvaluated

    by_id: dict[str, Any] = {}
    async for batch in replay(settings.kafka, settings.run_id, ["evaluations"]):
        for delivered in batch:
            if isinstance(delivered.event.payload, CheckpointEvaluated):
                by_id.setdefault(delivered.event.event_id, delivered.event.payload)
    return list(by_id.values())


commands = typer.Typer()


@commands.command("eval")
def eval_command(
    ctx: typer.Context,
    checkpoint: Annotated[
        str, typer.Option("--checkpoint", help="A checkpoint id published in this run, or a model folder.")
    ],
    categories: Annotated[
        str | None,
        typer.Option(help="Comma-separated BFCL v4 categories or groups (non_live, live, ast, relevance)."),
    ] = None,
    limit: Annotated[int | None, typer.Option(min=1, help="First N items of each category.")] = None,
    output: Annotated[
        Path | None,
        typer.Option(
            help="Per-item results file, .jsonl or .parquet (default: <checkpoint>.manual.jsonl under "
            "eval.results_dir; the evaluate stage's own <checkpoint>.jsonl is left as it is)."
        ),
    ] = None,
    max_new_tokens: Annotated[int | None, typer.Option(min=1, help="Decode budget per item.")] = None,
    batch_size: Annotated[int | None, typer.Option(min=1, help="Prompts per backend call.")] = None,
) -> None:
    """Evaluate a policy on BFCL v4's single-turn categories with bfcl-eval's own data and AST checker."""
    from evaluation.suite import SuiteError
    from looptool.cli.setup import preflight_or_exit
    from looptool.preflight import eval_checks

    settings = settings_of(ctx)
    preflight_or_exit("eval", eval_checks(settings, checkpoint))
    try:
        asyncio.run(
            run_eval_command(
                settings,
                checkpoint,
                categories=categories,
                limit=limit,
                output=output,
                max_new_tokens=max_new_tokens,
                batch_size=batch_size,
                console=console,
            )
        )
    except (CheckpointNotFoundError, SuiteError, ValueError) as error:
        raise typer.BadParameter(str(error)) from error
