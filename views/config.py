"""Settings of the sample store (the ``[store]`` section)."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from pydantic import Field

from bus.config import RunSettings
from common.settings import Section


class StoreSettings(Section):
    """The LanceDB sample store (materialised view of the topics)."""

    path: Path = Path("data/store")
    per_run: bool = Field(default=True, description="Keep each run's store in its own folder, path/<run id>.")
    rebuild_workers: int = Field(
        default=0,
        ge=0,
        description="Processes that read and decode the topics in a rebuild, each a share of the partitions. "
        "0 (the default): one per 100k events of the run, at most one per usable core and per partition "
        "(a worker takes about a second to start); 1: the rebuilding process reads them itself.",
    )

    def folder(self, run_id: str) -> Path:
        """The store folder of ``run_id``: ``path/<run id>`` (or ``path`` itself with ``per_run`` off)."""
        return self.path / run_id if self.per_run else self.path


class StoreRunSettings(RunSettings, Protocol):
    """What the views need of the app's settings: the run, its cluster and the store folder."""

    @property
    def store(self) -> StoreSettings: ...
