"""Settings of the sample store (the ``[store]`` section)."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from bus.config import RunSettings
from common.settings import Section


class StoreSettings(Section):
    """The LanceDB sample store (materialised view of the topics)."""

    path: Path = Path("data/store")


class StoreRunSettings(RunSettings, Protocol):
    """What the views need of the app's settings: the run, its cluster and the store folder."""

    @property
    def store(self) -> StoreSettings: ...
