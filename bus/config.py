"""Settings of the Kafka adapters (the ``[kafka]`` section)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal, Protocol

from pydantic import Field, SecretStr, field_validator

from common.settings import Section


class KafkaSettings(Section):
    """Where the brokers are and how to talk to them.

    ``bootstrap_servers`` unset means "start the embedded broker" for the commands that can
    (``looptool demo``, tests); every other command requires it.
    """

    bootstrap_servers: str | None = None
    client_id: str = "looptool"
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = None
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    sasl_password_file: Path | None = Field(
        default=None, description="A file holding the SASL password (a mounted secret); read at connect."
    )
    ssl_cafile: Path | None = None
    ssl_certfile: Path | None = None
    ssl_keyfile: Path | None = None
    partitions: int = Field(default=4, ge=1, description="Partitions of the per-sample topics.")
    replication_factor: int = Field(default=1, ge=1)
    # Tansu holds a group join for the whole rebalance timeout: keep these low on the embedded broker.
    rebalance_timeout_s: float = Field(default=3.0, gt=0)
    session_timeout_s: float = Field(default=6.0, gt=0)
    heartbeat_interval_s: float = Field(default=1.0, gt=0)
    request_timeout_s: float = Field(default=30.0, gt=0)
    max_poll_interval_s: float = Field(
        default=3600.0,
        gt=0,
        description="Longest a stage may hold a batch (the probe waits in one for its round's checkpoint).",
    )
    topic_retention_ms: int = Field(
        default=-1, ge=-1, description="retention.ms of the topics we create: -1 keeps every event (replay)."
    )

    connect_timeout_s: float = Field(
        default=10.0, gt=0, description="How long a command tries to reach the broker before it gives up."
    )

    @field_validator("bootstrap_servers")
    @classmethod
    def _no_credentials_in_servers(cls, value: str | None) -> str | None:
        if value is not None and "@" in value:
            raise ValueError(
                "bootstrap_servers must be host:port pairs without credentials: give the user as "
                "sasl_username and the password as sasl_password_file (a file holding it) or "
                "sasl_password (e.g. LOOPTOOL_KAFKA__SASL_PASSWORD)"
            )
        return value

    def resolved_sasl_password(self) -> str | None:
        """The password from ``sasl_password`` or, failing that, the first line of ``sasl_password_file``."""
        if self.sasl_password is not None:
            return self.sasl_password.get_secret_value()
        if self.sasl_password_file is not None:
            return self.sasl_password_file.read_text(encoding="utf-8").strip() or None
        return None


class RunSettings(Protocol):
    """What the bus needs of the app's settings: the run, and the cluster its topics live on."""

    @property
    def run_id(self) -> str: ...

    @property
    def kafka(self) -> KafkaSettings: ...
