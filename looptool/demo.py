"""``looptool demo``: the project's main job, end to end on whatever broker the settings name.

Today it runs the event-sourced skeleton: seeds are ingested into the run's topics, the sample
store is materialised from them live, then rebuilt from the topics alone and compared with the
live one. Later stages of the loop plug into this same flow.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from rich.console import Console
from rich.table import Table

from looptool.config import Settings
from looptool.kafka import ensure_topics
from streams.ingest import ingest_file
from streams.store import SampleStore, materialise, rebuild

EXAMPLE_SEEDS = Path(__file__).resolve().parent.parent / "examples" / "seeds"


def default_seed_files() -> list[Path]:
    files = sorted(EXAMPLE_SEEDS.glob("*.jsonl"))
    if not files:
        raise FileNotFoundError(f"no example seed files under {EXAMPLE_SEEDS}")
    return files


async def run_demo(settings: Settings, seeds: list[Path] | None, workdir: Path, console: Console) -> bool:
    """Run the demo; returns False if the rebuilt store differs from the live one."""
    if settings.run_id == "default":
        settings = settings.model_copy(
            update={"run_id": "demo-" + datetime.now(UTC).strftime("%Y%m%d%H%M%S")}
        )
    live_path, rebuilt_path = workdir / "store", workdir / "rebuilt"
    console.rule(f"[bold]looptool demo[/] · run {settings.run_id}")
    await ensure_topics(settings.kafka, settings.run_id)

    from looptool.cli import print_ingest_report

    for seed_file in seeds or default_seed_files():
        print_ingest_report(await ingest_file(seed_file, settings))

    live = SampleStore.reset(live_path)
    with console.status("materialising the sample store from the topics…"):
        applied = await materialise(settings, live, stop_when_idle=True)
    console.print(f"live store: {applied} events applied → {live_path}")

    with console.status("rebuilding the store by replaying every topic from offset 0…"):
        stats = await rebuild(settings, rebuilt_path)
    same = live.snapshot() == SampleStore(rebuilt_path).snapshot()

    table = Table("table", "live rows", "rebuilt rows", title="sample store (LanceDB)")
    rebuilt_counts = SampleStore(rebuilt_path).counts()
    for name, count in live.counts().items():
        table.add_row(name, str(count), str(rebuilt_counts[name]))
    console.print(table)

    by_origin = Table("source format", "samples", "relabelled", title="samples in the store")
    formats: dict[str, list[int]] = {}
    for row in live.rows("samples"):
        entry = formats.setdefault(row["source_format"], [0, 0])
        entry[0] += 1
        entry[1] += int(row["relabel_count"] > 0)
    for fmt, (count, relabelled) in sorted(formats.items()):
        by_origin.add_row(fmt, str(count), str(relabelled))
    console.print(by_origin)

    dead = [row for row in live.rows("events") if row["event_type"] == "DeadLetter"]
    if dead:
        dead_table = Table("stage", "source", "reason", title="dead letters")
        import json

        for row in dead:
            payload = json.loads(row["payload_json"])
            dead_table.add_row(payload["stage"], payload.get("source_ref") or "", payload["reason"][:100])
        console.print(dead_table)

    verdict = "[green]rebuilt store equals the live store[/]" if same else "[red]rebuilt store DIFFERS[/]"
    console.print(f"replayed {stats.records} records: {verdict}")
    return same
