"""Ingest onto the bus: seed sources read record by record (:mod:`streams.ingest`) and sent to the run's
topics, with progress; a record that cannot be read becomes a DeadLetter there, and ingest goes on."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from bus.config import RunSettings
from bus.kafka import EventProducer, ensure_topics
from common.logs import get_logger
from evaluation.decontam import Decontaminator
from streams.ingest import IngestReport, read_records
from streams.sources import count_records, expand

log = get_logger(__name__)


async def ingest_paths(
    paths: Sequence[Path],
    settings: RunSettings,
    fmt: str = "auto",
    show_progress: bool = True,
    answers: Path | None = None,
    *,
    decontaminate: bool = True,
) -> IngestReport:
    """Ingest seed sources into the run's topics; returns what happened."""
    paths = [Path(p) for p in paths]
    files = expand(paths)  # fails early, before any event, on a path that is not there
    report = IngestReport(path=", ".join(str(p) for p in paths))
    counts = [count_records(f) for f in files]
    total = sum(c for c in counts if c is not None) if all(c is not None for c in counts) else None
    await ensure_topics(settings.kafka, settings.run_id)
    progress = Progress(
        TextColumn("[bold]ingest[/] {task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        disable=not show_progress,
        transient=True,
    )
    async with EventProducer(settings.kafka) as producer:
        pending = []
        with progress:
            task = progress.add_task(report.path[:60], total=total)
            decontaminator = Decontaminator.from_suite() if decontaminate else None
            for event in read_records(
                paths,
                settings.run_id,
                fmt,
                report,
                decontaminator,
                answers,
                on_record=lambda: progress.update(task, completed=report.records),
            ):
                pending.append(await producer.send(event))
        for future in pending:
            await future
    log.info(
        "ingest.done",
        path=report.path,
        records=report.records,
        samples=report.samples,
        dead_lettered=report.dead_lettered,
        duplicates=report.duplicates,
        overlapping_eval=report.overlapping_eval,
    )
    return report


async def ingest_file(
    path: Path,
    settings: RunSettings,
    fmt: str = "auto",
    show_progress: bool = True,
    answers: Path | None = None,
    *,
    decontaminate: bool = True,
) -> IngestReport:
    """Ingest one source (file, folder or saved dataset) into the run's topics."""
    return await ingest_paths(
        [Path(path)], settings, fmt, show_progress, answers, decontaminate=decontaminate
    )
