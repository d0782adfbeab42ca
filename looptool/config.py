"""The one configuration object: a TOML file plus ``LOOPTOOL_*`` environment variables.

Each component keeps its own settings beside it (``bus/config.py``, ``streams/config.py``,
``trainer/config.py``, ...); this module composes them into the sections of one file.
Precedence, highest first: explicit overrides passed to :func:`load_settings`, environment variables
(``LOOPTOOL_KAFKA__BOOTSTRAP_SERVERS=host:9092``; nested keys joined by ``__``), the TOML file
(``--config``, ``$LOOPTOOL_CONFIG`` or ``./looptool.toml``), then defaults.
"""

from __future__ import annotations

import os
from contextvars import ContextVar
from pathlib import Path
from typing import Any

import tomli_w
from pydantic import Field, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from bus.config import KafkaSettings
from common.logs import LogSettings
from common.settings import RUN_ID_PATTERN
from evaluation.config import EvalSettings
from evaluation.gate import PromoteSettings
from streams.config import (
    GeneratorSettings,
    IngestSettings,
    JudgeSettings,
    LoopSettings,
    PolicySettings,
    RoleOverrides,
    RoleSettings,
    merged_role,
)
from trainer.config import TrainerSettings
from views.config import StoreSettings
from world.config import WorldSettings

DEFAULT_CONFIG_FILE = Path("looptool.toml")

_config_file: ContextVar[Path | None] = ContextVar("looptool_config_file", default=None)


class Settings(BaseSettings):
    """Everything a looptool process needs to know, loaded once at start."""

    model_config = SettingsConfigDict(
        env_prefix="LOOPTOOL_",
        env_nested_delimiter="__",
        extra="forbid",
        validate_default=True,
        hide_input_in_errors=True,  # values may be secrets; errors reach terminals and logs
    )

    run_id: str = "default"
    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    store: StoreSettings = Field(default_factory=StoreSettings)
    log: LogSettings = Field(default_factory=LogSettings)
    policy: PolicySettings = Field(default_factory=PolicySettings)
    loop: LoopSettings = Field(default_factory=LoopSettings)
    eval: EvalSettings = Field(default_factory=EvalSettings)
    ingest: IngestSettings = Field(default_factory=IngestSettings)
    judge: JudgeSettings | None = None
    generator: GeneratorSettings | None = None
    verifier: RoleOverrides | None = None  # type: ignore[valid-type]  # keys not set: [judge]'s
    world: WorldSettings | None = None
    trainer: TrainerSettings = Field(default_factory=TrainerSettings)
    promote: PromoteSettings = Field(default_factory=PromoteSettings)

    @field_validator("run_id")
    @classmethod
    def _valid_run_id(cls, value: str) -> str:
        if not RUN_ID_PATTERN.match(value):
            raise ValueError(
                f"run_id {value!r} must match {RUN_ID_PATTERN.pattern} (it prefixes Kafka topic names)"
            )
        return value

    def verifier_role(self) -> RoleSettings | None:
        """The verifier's endpoint and sampling: [judge]'s, with whatever [verifier] sets; None if neither."""
        if self.verifier is None:
            return merged_role(self.judge, None) if self.judge is not None else None
        return merged_role(self.judge, self.verifier)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        config_file = _config_file.get()
        if config_file is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=config_file))
        return tuple(sources)


def config_file_path(explicit: Path | None = None) -> Path | None:
    """The TOML file to read: ``explicit``, else ``$LOOPTOOL_CONFIG``, else ``./looptool.toml`` if present."""
    if explicit is not None:
        if not explicit.is_file():
            raise FileNotFoundError(f"config file not found: {explicit}")
        return explicit
    from_env = os.environ.get("LOOPTOOL_CONFIG")
    if from_env:
        path = Path(from_env)
        if not path.is_file():
            raise FileNotFoundError(f"LOOPTOOL_CONFIG points at a missing file: {path}")
        return path
    return DEFAULT_CONFIG_FILE if DEFAULT_CONFIG_FILE.is_file() else None


def load_settings(config_file: Path | None = None, **overrides: Any) -> Settings:
    """Load the settings from file + environment; keyword overrides win over both."""
    token = _config_file.set(config_file_path(config_file))
    try:
        return Settings(**overrides)
    finally:
        _config_file.reset(token)


def write_config(settings: Settings, path: Path) -> None:
    """The run's settings as a TOML file the services read (the LLM roles, which may hold keys, never)."""
    data = settings.model_dump(mode="json", exclude_none=True, exclude={"judge", "generator", "verifier"})
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(tomli_w.dumps(data), encoding="utf-8")
