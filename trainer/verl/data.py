"""A round's rows as verl's RLHF parquet.

Columns: ``prompt`` (the chat from :func:`toolcall.prompts.build_chat`, Figure 7 system prompt included),
``data_source``, ``ability``, ``reward_model`` (``{"style": "rule", "ground_truth": ...}``) and
``extra_info``. ``ground_truth`` is :func:`toolcall.reward.ground_truth_json`, which verl hands back to
our reward, :func:`toolcall.reward.compute_score` (``reward.custom_reward_function``).
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import os
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from common.logs import get_logger

log = get_logger(__name__)


# Rows are tagged with toolcall.reward.DATA_SOURCE (verl routes rewards by it); kept literal here so
# this module's constants read without importing the reward.
DATA_SOURCE = "looptool"


ABILITY = "tool_calling"


_ALLOWED_ROLES = frozenset({"system", "user", "assistant"})


@dataclass(frozen=True)
class VerlRow:
    """One training prompt as verl reads it: the policy chat and the reward's ground truth."""

    sample_id: str
    chat: list[dict[str, str]]
    ground_truth: str

    @classmethod
    def from_sample(cls, sample_id: str, sample: Any, current_time: str | None = None) -> VerlRow:
        """Build the row of a :class:`toolcall.types.Sample` (tools, context, label)."""
        from toolcall.prompts import DEFAULT_CURRENT_TIME, build_chat
        from toolcall.reward import ground_truth_json

        time = getattr(sample, "conversation_time", None) or current_time or DEFAULT_CURRENT_TIME
        chat = build_chat(sample.tools, sample.messages, time)
        return cls(sample_id=sample_id, chat=chat, ground_truth=ground_truth_json(sample.tools, sample.label))


def parquet_schema() -> Any:
    """The Arrow schema of the rows verl's ``RLHFDataset`` and reward manager read."""
    import pyarrow as pa

    return pa.schema(
        [
            pa.field("data_source", pa.string(), nullable=False),
            pa.field(
                "prompt",
                pa.list_(pa.struct([pa.field("role", pa.string()), pa.field("content", pa.string())])),
                nullable=False,
            ),
            pa.field("ability", pa.string(), nullable=False),
            pa.field(
                "reward_model",
                pa.struct([pa.field("style", pa.string()), pa.field("ground_truth", pa.string())]),
                nullable=False,
            ),
            pa.field(
                "extra_info",
                pa.struct(
                    [
                        pa.field("index", pa.int64()),
                        pa.field("split", pa.string()),
                        pa.field("sample_id", pa.string()),
                        pa.field("round", pa.int64()),
                    ]
                ),
                nullable=False,
            ),
        ]
    )


def _check_row(position: int, row: VerlRow) -> None:
    where = f"row {position} (sample {row.sample_id!r})"
    if not row.sample_id:
        raise ValueError(f"row {position} has an empty sample_id")
    if not row.chat:
        raise ValueError(f"{where}: the chat is empty")
    for turn, message in enumerate(row.chat):
        if set(message) != {"role", "content"}:
            raise ValueError(
                f"{where}: message {turn} must have exactly 'role' and 'content', got {sorted(message)}"
            )
        if message["role"] not in _ALLOWED_ROLES:
            raise ValueError(
                f"{where}: message {turn} has role {message['role']!r} (allowed: system/user/assistant)"
            )
        if not isinstance(message["content"], str):
            raise ValueError(
                f"{where}: message {turn} content is {type(message['content']).__name__}, not str"
            )
    if row.chat[-1]["role"] == "assistant":
        raise ValueError(
            f"{where}: the chat ends with an assistant turn; the policy must answer the last turn"
        )
    try:
        truth = json.loads(row.ground_truth)
    except json.JSONDecodeError as error:
        raise ValueError(f"{where}: ground_truth is not JSON ({error})") from error
    if not isinstance(truth, dict) or not {"tools", "label"} <= set(truth):
        raise ValueError(f"{where}: ground_truth must be toolcall.reward.ground_truth_json (tools + label)")


def write_verl_parquet(
    rows: Iterable[VerlRow], path: str | Path, *, round_index: int, split: str = "train"
) -> int:
    """Write ``rows`` as verl RLHF parquet at ``path`` (atomically) and return how many were written.

    Every row is checked first: a bad one raises ``ValueError`` naming it, and nothing is written.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = list(rows)
    if not rows:
        raise ValueError("no rows to write: a verl round needs at least one training row")
    seen: set[str] = set()
    for position, row in enumerate(rows):
        _check_row(position, row)
        if row.sample_id in seen:
            raise ValueError(f"row {position}: sample_id {row.sample_id!r} appears twice")
        seen.add(row.sample_id)
    table = pa.Table.from_pylist(
        [
            {
                "data_source": DATA_SOURCE,
                "prompt": [{"role": m["role"], "content": m["content"]} for m in row.chat],
                "ability": ABILITY,
                "reward_model": {"style": "rule", "ground_truth": row.ground_truth},
                "extra_info": {
                    "index": index,
                    "split": split,
                    "sample_id": row.sample_id,
                    "round": round_index,
                },
            }
            for index, row in enumerate(rows)
        ],
        schema=parquet_schema(),
    )
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    try:
        pq.write_table(table, partial)
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)  # a failed write leaves no half file behind
    log.info("verl.parquet_written", path=str(path), rows=len(rows), round=round_index)
    return len(rows)


def round_date(rows: Sequence[VerlRow]) -> tuple[datetime.date, dict[str, int]]:
    """The conversation date verl gives a round's dated templates, and how many rows state each date
    (by Llama 3.x's ``date_string``, as :func:`toolcall.prompts.template_date_kwargs` writes it).

    verl renders every prompt with the same ``data.apply_chat_template_kwargs`` (its dataset and its
    agent loop's token builder take them once, for all rows), and one chat template, so one date
    serves the whole round: the one most rows state (the earliest among equals). The probe dates each
    prompt by its own chat; rows of another date get this one under verl (docs/gpu.md).
    """
    from toolcall.prompts import conversation_date, date_template_kwargs

    if not rows:
        raise ValueError("a verl round needs at least one training row")
    days = Counter(conversation_date(row.chat) for row in rows)
    chosen = min(days, key=lambda day: (-days[day], day))
    return chosen, {date_template_kwargs(day)["date_string"]: count for day, count in days.items()}


def round_chat_template(model_path: str | Path, date: datetime.date) -> str | None:
    """The model's chat template with its clock set to the round's ``date``
    (:func:`toolcall.prompts.template_with_fixed_clock`), for verl's
    ``actor_rollout_ref.model.custom_chat_template``; None for a template that never reads
    ``strftime_now`` (its date, if any, is ``date_string``, which verl's kwargs carry).

    gpt-oss ("Current date:") and SmolLM3 ("Today Date:") read the date only through
    ``strftime_now``: a callable, which the probe passes but no Hydra override can.
    """
    from transformers import AutoTokenizer

    from toolcall.prompts import template_with_fixed_clock

    template = AutoTokenizer.from_pretrained(str(model_path)).chat_template
    if not isinstance(template, str) or "strftime_now" not in template:
        return None
    return template_with_fixed_clock(template, date)


def prompts_as_verl_renders(
    model_path: str | Path,
    rows: Sequence[VerlRow],
    chat_template_kwargs: Mapping[str, Any] | None = None,
    chat_template: str | None = None,
) -> tuple[list[VerlRow], list[int]]:
    """Each row with its chat in the form the model's chat template accepts, and that prompt's tokens
    as verl renders it (its own ``apply_chat_template`` with a generation prompt and
    ``chat_template_kwargs``, the round's ``data.apply_chat_template_kwargs``, and ``chat_template``
    in place of the model's when given: the round's ``custom_chat_template``).

    verl renders the parquet's chats itself: a template that refuses a system turn (Gemma 2) or
    repeated roles (Mistral, Gemma 3: a tool result is a user turn) would stop it on the first row.
    The chat written is the form the probe renders (:func:`toolcall.templates.template_chat`).
    """
    from transformers import AutoTokenizer

    from toolcall.templates import template_chat

    tokenizer = AutoTokenizer.from_pretrained(str(model_path))
    if chat_template is not None:
        tokenizer.chat_template = chat_template  # as verl's model config sets it
    kwargs = dict(chat_template_kwargs or {})
    accepted, counts = [], []
    for row in rows:
        chat = template_chat(tokenizer, row.chat, kwargs)
        text = tokenizer.apply_chat_template(chat, add_generation_prompt=True, tokenize=False, **kwargs)
        accepted.append(dataclasses.replace(row, chat=[dict(message) for message in chat]))
        counts.append(len(tokenizer(text, add_special_tokens=False)["input_ids"]))
    return accepted, counts
