"""The verl backend: the parquet and config a round writes, and verl's own code reading them.

The first group runs in the project's environment: the parquet's exact Arrow schema and values, the
Table 6 hyper-parameters at verl's keys, batch scaling, override quoting, the output streaming and
failure reporting of the launcher, and the checks on a merged folder.

The second group runs verl 0.9.1 itself, in its own environment (``scripts/install-verl.sh``), as a
subprocess: its config validation, dataset and reward loop on a round we wrote; its FSDP checkpoint
manager and model merger behind our merge step; and a real ``main_ppo`` launch, which on a machine
without a GPU must fail with our error carrying verl's own last lines. The environment is found at
``$LOOPTOOL_VERL_PYTHON`` or ``.venv-verl/bin/python``; when it is missing these tests fail, unless
``LOOPTOOL_TEST_ALLOW_MISSING`` names verl (see :mod:`tests.requirements`).
"""

from __future__ import annotations

import datetime
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.requirements import require
from toolcall.parsing import render_action
from toolcall.prompts import build_chat
from toolcall.reward import DATA_SOURCE as REWARD_DATA_SOURCE
from toolcall.reward import compute_score
from toolcall.specs import load_tools
from toolcall.types import Action, Message, Sample, ToolCall
from trainer.verl.backend import VerlBackend, VerlRoundResult, finish_hf_folder, latest_checkpoint
from trainer.verl.config import (
    BatchPlan,
    VerlSettings,
    hydra_value,
    plan_batches,
    verl_config,
    verl_overrides,
)
from trainer.verl.data import DATA_SOURCE, VerlRow, write_verl_parquet
from trainer.verl.process import (
    DEFAULT_VERL_PYTHON,
    VERL_PYTHON_ENV,
    MetricsFollower,
    VerlRunError,
    reward_core_path,
    run_streaming,
    summarize_step,
    verl_environment,
)

DATA = Path(__file__).parent / "data"

TOOLS = load_tools(
    [
        {
            "name": "get_weather",
            "description": "Current weather of a city.",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}, "unit": {"type": "string", "enum": ["c", "f"]}},
                "required": ["city"],
            },
        },
        {
            "name": "book_table",
            "description": "Book a restaurant table.",
            "parameters": {
                "type": "object",
                "properties": {"people": {"type": "integer"}, "time": {"type": "string"}},
                "required": ["people", "time"],
            },
        },
    ]
)
CITIES = ["Paris", "Lyon", "Nice", "Lille", "Tours", "Brest"]


def _samples() -> list[Sample]:
    samples = [
        Sample(
            tools=TOOLS,
            messages=[Message(role="user", content=f"What's the weather in {city}?")],
            label=Action(calls=[ToolCall(name="get_weather", arguments={"city": city})]),
        )
        for city in CITIES
    ]
    # a multi-turn one: an earlier call and its result, then the next step
    samples.append(
        Sample(
            tools=TOOLS,
            messages=[
                Message(role="user", content="Book for 2 at 19:00 if it is sunny in Paris."),
                Message(
                    role="assistant", tool_calls=[ToolCall(name="get_weather", arguments={"city": "Paris"})]
                ),
                Message(role="tool", name="get_weather", content='{"condition": "sunny"}'),
            ],
            label=Action(calls=[ToolCall(name="book_table", arguments={"people": 2, "time": "19:00"})]),
        )
    )
    # a no-call answer
    samples.append(
        Sample(
            tools=TOOLS,
            messages=[Message(role="user", content="Tell me a joke.")],
            label=Action(text="I can only help with the weather and bookings."),
        )
    )
    return samples


def _rows() -> list[VerlRow]:
    return [VerlRow.from_sample(f"sample-{i}", sample) for i, sample in enumerate(_samples())]


# --- the parquet --------------------------------------------------------------------------------


def test_parquet_has_the_exact_columns_and_types_verl_reads(tmp_path: Path) -> None:
    path = tmp_path / "round" / "train.parquet"
    samples = _samples()
    assert write_verl_parquet(_rows(), path, round_index=3) == len(samples)

    table = pq.read_table(path)
    message = pa.struct([pa.field("role", pa.string()), pa.field("content", pa.string())])
    assert table.schema.names == ["data_source", "prompt", "ability", "reward_model", "extra_info"]
    assert table.schema.field("data_source").type == pa.string()
    assert table.schema.field("prompt").type == pa.list_(message)
    assert table.schema.field("ability").type == pa.string()
    assert table.schema.field("reward_model").type == pa.struct(
        [pa.field("style", pa.string()), pa.field("ground_truth", pa.string())]
    )
    assert table.schema.field("extra_info").type == pa.struct(
        [
            pa.field("index", pa.int64()),
            pa.field("split", pa.string()),
            pa.field("sample_id", pa.string()),
            pa.field("round", pa.int64()),
        ]
    )

    records = table.to_pylist()
    for index, (record, sample) in enumerate(zip(records, samples, strict=True)):
        assert record["data_source"] == DATA_SOURCE == REWARD_DATA_SOURCE
        assert record["prompt"] == build_chat(sample.tools, sample.messages)
        assert record["prompt"][0]["role"] == "system"
        assert "<tools>" in record["prompt"][0]["content"]  # the Figure 7 prompt with the tools
        assert record["reward_model"]["style"] == "rule"
        assert record["extra_info"] == {
            "index": index,
            "split": "train",
            "sample_id": f"sample-{index}",
            "round": 3,
        }
        truth = record["reward_model"]["ground_truth"]
        # the ground truth scores the label's own rendering 1 and another answer 0
        assert compute_score(record["data_source"], render_action(sample.label), truth) == 1.0
        wrong = Action(calls=[ToolCall(name="get_weather", arguments={"city": "Atlantis"})])
        assert compute_score(record["data_source"], render_action(wrong), truth) == 0.0
    assert not list(path.parent.glob("*.partial"))


@pytest.mark.parametrize(
    ("broken", "message"),
    [
        (VerlRow("bad", [], "{}"), "chat is empty"),
        (VerlRow("bad", [{"role": "tool", "content": "x"}], '{"tools": [], "label": {}}'), "role 'tool'"),
        (
            VerlRow("bad", [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "a"}], "{}"),
            "ends",
        ),
        (VerlRow("bad", [{"role": "user", "content": 3}], "{}"), "not str"),  # type: ignore[dict-item]
        (
            VerlRow("bad", [{"role": "user", "content": "hi", "name": "x"}], "{}"),
            "exactly 'role' and 'content'",
        ),
        (VerlRow("bad", [{"role": "user", "content": "hi"}], "not json"), "not JSON"),
        (VerlRow("bad", [{"role": "user", "content": "hi"}], '{"tools": []}'), "ground_truth_json"),
        (VerlRow("sample-0", [{"role": "user", "content": "hi"}], '{"tools": [], "label": {}}'), "twice"),
        (VerlRow("", [{"role": "user", "content": "hi"}], '{"tools": [], "label": {}}'), "empty sample_id"),
    ],
)
def test_a_bad_row_is_named_and_nothing_is_written(tmp_path: Path, broken: VerlRow, message: str) -> None:
    path = tmp_path / "train.parquet"
    with pytest.raises(ValueError, match=message):
        write_verl_parquet([*_rows(), broken], path, round_index=1)
    assert not path.exists()
    assert not list(tmp_path.iterdir())


def test_no_rows_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no rows"):
        write_verl_parquet([], tmp_path / "train.parquet", round_index=1)


# --- the config -------------------------------------------------------------------------------


def test_config_carries_every_table6_hyper_parameter_at_verls_key(tmp_path: Path) -> None:
    settings = VerlSettings()
    plan = plan_batches(1000, settings)
    config = verl_config(
        settings,
        plan=plan,
        model_path=tmp_path / "round-1" / "model",
        train_file=tmp_path / "train.parquet",
        run_dir=tmp_path / "round-2",
        experiment_name="run-round-2",
    )
    table6 = {
        "data.train_batch_size": 128,
        "actor_rollout_ref.actor.optim.lr": 1e-6,
        "actor_rollout_ref.actor.ppo_mini_batch_size": 128,
        "actor_rollout_ref.actor.use_kl_loss": False,
        "algorithm.use_kl_in_reward": False,
        "actor_rollout_ref.actor.entropy_coeff": 0.0,
        "actor_rollout_ref.actor.clip_ratio_low": 0.2,
        "actor_rollout_ref.actor.clip_ratio_high": 0.28,
        "actor_rollout_ref.rollout.n": 16,
        "actor_rollout_ref.rollout.temperature": 1.0,
        "actor_rollout_ref.rollout.gpu_memory_utilization": 0.7,
        "data.max_prompt_length": 4096,
        "data.max_response_length": 1024,
        "trainer.total_epochs": 2,
        "algorithm.adv_estimator": "grpo",
        # optimizer reset, init from the previous checkpoint
        "trainer.resume_mode": "disable",
        "actor_rollout_ref.model.path": str(tmp_path / "round-1" / "model"),
        "trainer.default_local_dir": str(tmp_path / "round-2" / "checkpoints"),
        # our reward
        "reward.custom_reward_function.path": "pkg://toolcall.reward",
        "reward.custom_reward_function.name": "compute_score",
        "data.reward_fn_key": "data_source",
        "data.train_files": [str(tmp_path / "train.parquet")],
        # progress is followed through verl's file logger; the last step saves the checkpoint
        "trainer.logger": ["console", "file"],
        "trainer.save_freq": plan.total_steps,
        "trainer.val_before_train": False,
        "trainer.test_freq": -1,
    }
    for key, value in table6.items():
        assert config[key] == value, key
        assert type(config[key]) is type(value), key
    # flash-attn by default, with verl's padding removal; no attention override
    assert config["actor_rollout_ref.model.use_remove_padding"] is True
    assert not any("attn_implementation" in key for key in config)
    assert plan == BatchPlan(
        rows=1000, train_batch_size=128, ppo_mini_batch_size=128, steps_per_epoch=7, total_steps=14
    )

    overrides = verl_overrides(config, ["trainer.balance_batch=false"])
    assert "actor_rollout_ref.actor.optim.lr=1e-06" in overrides
    assert "actor_rollout_ref.actor.clip_ratio_high=0.28" in overrides
    assert "actor_rollout_ref.actor.use_kl_loss=false" in overrides
    assert "algorithm.adv_estimator='grpo'" in overrides
    assert "trainer.logger=['console','file']" in overrides
    assert overrides[-1] == "trainer.balance_batch=false"
    assert len({item.split("=", 1)[0] for item in overrides}) == len(overrides)


@pytest.mark.parametrize(
    ("rows", "gpus", "n", "mini", "expected"),
    [
        (1000, 8, 16, 128, (128, 128, 7)),
        (300, 8, 16, 128, (128, 128, 2)),
        (100, 8, 16, 128, (100, 100, 1)),
        (8, 1, 16, 128, (8, 8, 1)),
        # 5 prompts × 3 rollouts do not split over 2 GPUs: 4 prompts
        (5, 2, 3, 128, (4, 4, 1)),
        # mini-batches of at most 3 from a batch of 4 prompts: 2 (4 is not a multiple of 3)
        (4, 1, 2, 3, (4, 2, 1)),
        # 6 prompts × 2 rollouts over 4 GPUs, mini-batches of at most 3: 3 × 2 does not split, so 2
        (6, 4, 2, 3, (6, 2, 1)),
    ],
)
def test_batches_shrink_to_a_small_round_within_verls_divisibility_rules(
    rows: int, gpus: int, n: int, mini: int, expected: tuple[int, int, int]
) -> None:
    settings = VerlSettings(n_gpus_per_node=gpus, rollout_n=n, ppo_mini_batch_size=mini)
    plan = plan_batches(rows, settings)
    assert (plan.train_batch_size, plan.ppo_mini_batch_size, plan.steps_per_epoch) == expected
    assert plan.total_steps == plan.steps_per_epoch * 2
    assert plan.train_batch_size * n % gpus == 0
    assert plan.ppo_mini_batch_size * n % gpus == 0
    assert plan.train_batch_size % plan.ppo_mini_batch_size == 0
    assert plan.rows_unused_per_epoch == rows - plan.steps_per_epoch * plan.train_batch_size


def test_impossible_batches_and_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="splits evenly"):
        plan_batches(1, VerlSettings(n_gpus_per_node=8, rollout_n=3))
    with pytest.raises(ValueError, match="at least one"):
        plan_batches(0, VerlSettings())
    with pytest.raises(ValueError, match="rollout_n"):
        VerlSettings(rollout_n=1)


def test_hydra_values_are_quoted_escaped_and_interpolations_refused() -> None:
    assert hydra_value("/data/my run/round=1") == "'/data/my run/round=1'"
    assert hydra_value(Path("/a/b")) == "'/a/b'"
    assert hydra_value(True) == "true"
    assert hydra_value(None) == "null"
    assert hydra_value(1e-6) == "1e-06"
    assert hydra_value(["a", 2]) == "['a',2]"
    # Hydra's escapes in a quoted value (verl's own Hydra reads them back: the chat-template tests)
    assert hydra_value("it's") == "'it\\'s'" and hydra_value("a\\b") == "'a\\b'"
    assert hydra_value("a\\'b\\") == "'a\\\\\\'b\\\\'"
    with pytest.raises(ValueError):
        hydra_value("${oc.env:HOME}")
    with pytest.raises(ValueError):
        hydra_value(math.nan)
    with pytest.raises(TypeError):
        hydra_value({1, 2})
    with pytest.raises(ValueError, match="not an identifier"):
        hydra_value({"a b": 1})


def test_a_table_valued_template_switch_reaches_verls_overrides(tmp_path: Path) -> None:
    """A chat-template switch whose value is a table had no Hydra form: the round stopped with a
    TypeError before verl started. It is written in Hydra's dictionary syntax."""
    from tests.families import build_family_model

    model = build_family_model("qwen3", tmp_path / "qwen3")
    switches = {"enable_thinking": False, "tool_options": {"strict": True, "order": ["a", "b"]}}
    settings = VerlSettings(n_gpus_per_node=1, train_batch_size=4, ppo_mini_batch_size=2)
    backend = VerlBackend(settings, tmp_path / "work", show_progress=False, chat_template_kwargs=switches)
    _, _, overrides = backend.prepare_round(_rows(), round_index=1, model_path=model)
    assert "+data.apply_chat_template_kwargs.tool_options={strict:true,order:['a','b']}" in overrides
    assert "+data.apply_chat_template_kwargs.enable_thinking=false" in overrides


# --- following and failing ------------------------------------------------------------------


def test_metrics_follower_reads_complete_lines_only(tmp_path: Path) -> None:
    path = tmp_path / "metrics.jsonl"
    follower = MetricsFollower(path)
    assert follower.read_new() == []
    with path.open("wb") as handle:
        handle.write(
            b'{"step": 1, "data": {"critic/score/mean": 0.25, "actor/pg_loss": 0.5}}\n{"step": 2, "da'
        )
    assert follower.read_new() == [(1, {"critic/score/mean": 0.25, "actor/pg_loss": 0.5})]
    with path.open("ab") as handle:
        handle.write(b'ta": {"critic/score/mean": 0.5}}\nnot json\n')
    assert follower.read_new() == [(2, {"critic/score/mean": 0.5})]
    assert follower.read_new() == []


def test_step_summary_names_and_binary_reward_std() -> None:
    summary = summarize_step(
        {
            "critic/score/mean": 0.25,
            "actor/pg_loss": -0.1,
            "actor/ppo_kl": 0.002,
            "actor/kl_loss": 0.01,
            "response_length/mean": 40.0,
            "timing_s/step": 9.0,
            "actor/entropy": float("nan"),
        }
    )
    assert summary == {
        "reward_mean": 0.25,
        "reward_std": pytest.approx(math.sqrt(0.25 * 0.75)),
        "loss": -0.1,
        "policy_kl": 0.002,
        "kl": 0.01,
        "response_length_mean": 40.0,
    }


def test_run_streaming_keeps_the_log_and_the_tail_of_a_failing_command(tmp_path: Path) -> None:
    script = (
        "import sys\n"
        "for i in range(100):\n"
        "    print(f'line {i}')\n"
        "print('Boom: bad thing', file=sys.stderr)\n"
        "sys.exit(3)\n"
    )
    lines: list[str] = []
    ticks: list[int] = []
    run = run_streaming(
        [sys.executable, "-c", script],
        env=os.environ,
        cwd=tmp_path,
        log_path=tmp_path / "out.log",
        on_line=lines.append,
        on_tick=lambda: ticks.append(1),
        tail_lines=5,
    )
    assert run.returncode == 3
    assert not run.timed_out
    assert run.tail == ["line 96", "line 97", "line 98", "line 99", "Boom: bad thing"]
    assert len(lines) == 101
    assert ticks  # the metrics hook ran at least once (at the end)
    logged = (tmp_path / "out.log").read_text()
    assert "line 0\n" in logged and "Boom: bad thing" in logged

    error = VerlRunError("verl exited with status 3", log_path=tmp_path / "out.log", tail=run.tail)
    assert "Boom: bad thing" in str(error) and str(tmp_path / "out.log") in str(error)


def _running(pid: int) -> bool:
    """Alive and not a zombie (an orphan's zombie waits for a reaper that containers may lack)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


# A process that starts a child in its own group, prints the child's pid and waits.
PARENT_AND_CHILD = (
    "import subprocess, sys, time\n"
    "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(120)'])\n"
    "print(child.pid, flush=True)\n"
    "time.sleep(120)\n"
)


def test_run_streaming_kills_the_whole_group_on_timeout(tmp_path: Path) -> None:
    # the child starts a grandchild in the same group; both must be gone after the timeout
    pids: list[str] = []
    run = run_streaming(
        [sys.executable, "-c", PARENT_AND_CHILD],
        env=os.environ,
        cwd=tmp_path,
        log_path=tmp_path / "out.log",
        on_line=pids.append,
        timeout_s=3,
    )
    assert run.timed_out
    assert run.returncode != 0
    assert not _running(int(pids[0]))
    assert "timed out" in (tmp_path / "out.log").read_text()


def test_a_group_counts_as_alive_until_its_last_live_process_has_gone() -> None:
    from trainer.verl.process import _group_alive, _wait_group_gone

    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], start_new_session=True)
    try:
        assert _group_alive(live.pid)
        assert not _wait_group_gone(live.pid, timeout_s=0.2)  # still running: the wait gives up
    finally:
        os.killpg(live.pid, signal.SIGKILL)
    assert _wait_group_gone(live.pid, timeout_s=10)  # killed: gone once it has exited
    stat = Path(f"/proc/{live.pid}/stat").read_text()
    assert stat.rsplit(")", 1)[1].split()[0] == "Z"  # not reaped yet: a zombie does not count
    assert live.wait(timeout=5) == -signal.SIGKILL
    short = subprocess.Popen([sys.executable, "-c", "pass"], start_new_session=True)
    short.wait()
    assert not _group_alive(short.pid)


@pytest.mark.timeout(90)
def test_run_streaming_returns_when_a_daemon_keeps_the_pipe_open(tmp_path: Path) -> None:
    # the command exits at once but leaves a child in its own session holding stdout for 10 minutes:
    # waiting for end-of-file would hang the test past its timeout
    script = (
        "import subprocess, sys\n"
        "sleeper = [sys.executable, '-c', 'import time; time.sleep(600)']\n"
        "daemon = subprocess.Popen(sleeper, start_new_session=True)\n"
        "print(daemon.pid, flush=True)\n"
    )
    run = run_streaming(
        [sys.executable, "-c", script], env=os.environ, cwd=tmp_path, log_path=tmp_path / "o.log"
    )
    daemon = int(run.tail[0])
    try:
        assert run.returncode == 0 and len(run.tail) == 1
        assert _running(daemon)  # it really outlived the command
    finally:
        os.kill(daemon, signal.SIGKILL)


def test_a_round_result_becomes_a_checkpoint_published_payload(tmp_path: Path) -> None:
    result = VerlRoundResult(
        round_index=2,
        model_dir=tmp_path / "round-002" / "model",
        checkpoint_dir=tmp_path / "round-002" / "checkpoints" / "global_step_14" / "actor",
        step=14,
        metrics={"reward_mean": 0.5, "reward_std": 0.5, "loss": 0.01},
        wall_time_s=3600.0,
        log_path=tmp_path / "round-002" / "verl.log",
    )
    payload = result.checkpoint_published(new_checkpoint_id="ck-2", parent_checkpoint_id="ck-1")
    assert payload.model_dump() == {
        "new_checkpoint_id": "ck-2",
        "parent_checkpoint_id": "ck-1",
        "round": 2,
        "step": 14,
        "final": True,
        "uri": str(tmp_path / "round-002" / "model"),
        "backend": "verl",
        "metrics": {"reward_mean": 0.5, "reward_std": 0.5, "loss": 0.01},
        "wall_time_s": 3600.0,
    }


def test_verl_processes_see_only_the_reward_core_on_pythonpath(tmp_path: Path) -> None:
    core = reward_core_path(tmp_path / "reward-core")
    env = verl_environment(core, tmp_path / "m.jsonl", base={"PYTHONPATH": "/elsewhere", "PATH": "/usr/bin"})
    assert env["PYTHONPATH"] == str(core)  # nothing of this environment, nor what the caller had
    assert sorted(entry.name for entry in core.iterdir()) == ["looptool_reward_manager.py", "toolcall"]
    assert (core / "toolcall" / "reward.py").is_file()
    assert (core / "looptool_reward_manager.py").resolve().name == "reward_manager.py"
    assert env["VERL_FILE_LOGGER_PATH"] == str(tmp_path / "m.jsonl")
    assert reward_core_path(tmp_path / "reward-core") == core  # idempotent


def test_latest_checkpoint_reports_what_is_missing(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="tracker"):
        latest_checkpoint(tmp_path)
    (tmp_path / "latest_checkpointed_iteration.txt").write_text("4")
    with pytest.raises(FileNotFoundError, match="step 4"):
        latest_checkpoint(tmp_path)
    (tmp_path / "latest_checkpointed_iteration.txt").write_text("x")
    with pytest.raises(ValueError, match="not a step"):
        latest_checkpoint(tmp_path)


# --- with a tiny model ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from trainer.tiny_policy import build_tiny_policy

    return build_tiny_policy(tmp_path_factory.mktemp("tiny") / "model")


def test_finish_hf_folder_restores_a_dropped_chat_template(tiny_model: Path, tmp_path: Path) -> None:
    merged = tmp_path / "merged"
    shutil.copytree(tiny_model, merged)
    (merged / "chat_template.jinja").unlink(missing_ok=True)
    config = json.loads((merged / "tokenizer_config.json").read_text())
    config.pop("chat_template", None)
    (merged / "tokenizer_config.json").write_text(json.dumps(config))
    (merged / "generation_config.json").unlink()

    finish_hf_folder(merged, tiny_model)

    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(merged)
    assert tokenizer.chat_template
    assert (merged / "generation_config.json").is_file()
    for weights in merged.glob("*.safetensors"):
        weights.unlink()
    with pytest.raises(VerlRunError, match="safetensors"):
        finish_hf_folder(merged, tiny_model)


def test_prepare_round_drops_overlong_prompts_and_writes_the_overrides(
    tiny_model: Path, tmp_path: Path
) -> None:
    rows = _rows()
    long_row = VerlRow.from_sample(
        "too-long",
        Sample(
            tools=TOOLS,
            messages=[Message(role="user", content="weather " * 3000)],
            label=Action(calls=[ToolCall(name="get_weather", arguments={"city": "Paris"})]),
        ),
    )
    backend = VerlBackend(
        VerlSettings(n_gpus_per_node=1, max_prompt_length=2048), tmp_path, show_progress=False
    )
    (tmp_path / "round-002").mkdir(parents=True)
    (tmp_path / "round-002" / "leftover").write_text("from a failed attempt")

    run_dir, plan, overrides = backend.prepare_round(
        [*rows, long_row],
        round_index=2,
        model_path=tiny_model,
    )

    assert plan.rows == len(rows)
    ids = [
        record["sample_id"]
        for record in pq.read_table(run_dir / "train.parquet").column("extra_info").to_pylist()
    ]
    assert ids == [row.sample_id for row in rows]
    assert json.loads((run_dir / "verl_overrides.json").read_text()) == overrides
    assert f"data.train_batch_size={plan.train_batch_size}" in overrides
    with pytest.raises(ValueError, match="all 1 rows of round 3 exceed max_prompt_length=2048"):
        backend.prepare_round([long_row], round_index=3, model_path=tiny_model)
    # the earlier attempt is kept aside, not deleted
    kept = [p for p in tmp_path.iterdir() if p.name.startswith("round-002.attempt-")]
    assert len(kept) == 1 and (kept[0] / "leftover").read_text() == "from a failed attempt"


def _vllm_stops(model: Path, cli: list[str]) -> list[int]:
    """The ids vLLM stops a request at, for a server started with ``cli`` on ``model`` and a request
    that names no stop tokens (as verl's agent loop sends them), with vLLM's own functions: its CLI
    parser, the generation config it reads (``ModelConfig.try_get_generation_config``: the folder
    of ``--generation-config``, else the model's) and ``SamplingParams.update_from_generation_config``
    (what its input processor runs on every request, with the tokenizer's EOS as the primary end)."""
    from transformers import AutoTokenizer
    from vllm import SamplingParams
    from vllm.engine.arg_utils import EngineArgs
    from vllm.transformers_utils.config import try_get_generation_config
    from vllm.utils.argparse_utils import FlexibleArgumentParser

    parser = EngineArgs.add_cli_args(FlexibleArgumentParser())
    engine = EngineArgs.from_cli_args(parser.parse_args(["--model", str(model), *cli]))
    source = str(model) if engine.generation_config == "auto" else engine.generation_config
    saved = try_get_generation_config(source, trust_remote_code=False)
    sampling = SamplingParams(temperature=1.0, top_p=1.0, max_tokens=8)
    eos = AutoTokenizer.from_pretrained(model).eos_token_id
    sampling.update_from_generation_config(saved.to_diff_dict() if saved else {}, eos)
    return sorted(sampling.all_stop_token_ids)


def test_verls_vllm_rollouts_stop_where_the_probe_stops_for_every_family(tmp_path: Path) -> None:
    """verl's rollouts stopped at the tokenizer's EOS and the generation config's only (its agent loop
    names no stop tokens): Phi's <|end|> and Gemma's <end_of_turn>, in a folder without
    generation_config.json, did not stop them, so a rollout ran past the assistant's turn to the
    budget where the probe stops. Each round now hands vLLM a generation config whose eos_token_id
    holds the probe's ends (--generation-config through verl's engine_kwargs)."""
    from transformers import AutoTokenizer

    from inference.vllm_backend import stop_token_ids
    from tests.families import FAMILIES
    from tests.requirements import require_vllm

    require_vllm()
    key = "+actor_rollout_ref.rollout.engine_kwargs.vllm.generation_config"
    rows = _rows()[:4]
    settings = VerlSettings(
        n_gpus_per_node=1, train_batch_size=4, ppo_mini_batch_size=2, max_prompt_length=16384
    )
    for name, model in _family_folders(tmp_path / "models", list(FAMILIES)).items():
        backend = VerlBackend(settings, tmp_path / "work" / name, show_progress=False)
        run_dir, _, overrides = backend.prepare_round(rows, round_index=1, model_path=model)
        folder = run_dir / "rollout-generation-config"
        assert f"{key}='{folder}'" in overrides, name
        # verl passes engine_kwargs.vllm to `vllm serve` as options (build_cli_args_from_config)
        ends = stop_token_ids(AutoTokenizer.from_pretrained(model), model)
        assert _vllm_stops(model, ["--generation_config", str(folder)]) == ends, name
        written = json.loads((folder / "generation_config.json").read_text())
        if (model / "generation_config.json").is_file():  # the model's own, but for its ends
            own = json.loads((model / "generation_config.json").read_text())
            assert {**own, "eos_token_id": ends} == written, name
    phi = tmp_path / "models" / "phi4-bare"
    end = AutoTokenizer.from_pretrained(phi).convert_tokens_to_ids("<|end|>")
    assert end not in _vllm_stops(phi, [])  # what the model folder alone gives vLLM

    sglang = VerlBackend(settings.model_copy(update={"rollout_engine": "sglang"}), tmp_path / "sg")
    run_dir, _, overrides = sglang.prepare_round(rows, round_index=1, model_path=phi)
    assert not any(o.startswith(key) for o in overrides)  # SGLang reads no such folder
    assert not (run_dir / "rollout-generation-config").exists()


def _sglang_stops(model: Path, json_model_override_args: str) -> set[int]:
    """The ids SGLang ends a request at, for a server on ``model`` with that ServerArgs value: its
    ModelConfig updates the Hugging Face config with the override (``get_config``) and stops at the
    union of that config's and generation_config.json's ``eos_token_id`` (``_get_hf_eos_token_id``,
    handed to every request). SGLang is not installed here: these are its two steps, on transformers."""
    from transformers import AutoConfig, GenerationConfig

    def ids(value: int | list[int] | None) -> set[int]:
        return {value} if isinstance(value, int) else set(value or [])

    config = AutoConfig.from_pretrained(model)
    config.update(json.loads(json_model_override_args))
    stops = ids(config.eos_token_id)
    if (model / "generation_config.json").is_file():
        stops |= ids(GenerationConfig.from_pretrained(model).eos_token_id)
    return stops


_COMPOSE_IN_VERL = """
import json, sys
from pathlib import Path
import verl
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf
folder = str(Path(verl.__file__).parent / "trainer" / "config")
with initialize_config_dir(config_dir=folder, version_base=None):
    config = compose(config_name="ppo_trainer", overrides=json.loads(Path(sys.argv[1]).read_text()))
print(json.dumps(OmegaConf.to_container(config.actor_rollout_ref.rollout.engine_kwargs.sglang, resolve=True)))
"""


def test_verls_sglang_rollouts_stop_where_the_probe_stops_for_every_family(
    verl_python: Path, tmp_path: Path
) -> None:
    """With ``rollout_engine = "sglang"`` the round passed SGLang nothing of the template's ends (the
    generation-config folder is vLLM's; verl's agent loop sends no stop tokens): Phi's <|end|> and
    Gemma's <end_of_turn>, in a folder without generation_config.json, did not stop its rollouts.
    The round now gives SGLang the probe's ends as config.json's eos_token_id, through
    engine_kwargs.sglang.json_model_override_args, which verl hands to SGLang's ServerArgs."""
    from transformers import AutoTokenizer

    from inference.vllm_backend import stop_token_ids
    from tests.families import FAMILIES

    key = "+actor_rollout_ref.rollout.engine_kwargs.sglang.json_model_override_args"
    rows = _rows()[:4]
    settings = VerlSettings(
        n_gpus_per_node=1,
        train_batch_size=4,
        ppo_mini_batch_size=2,
        max_prompt_length=16384,
        rollout_engine="sglang",
    )
    overrides_by_family = {}
    for name, model in _family_folders(tmp_path / "models", list(FAMILIES)).items():
        backend = VerlBackend(settings, tmp_path / "work" / name, show_progress=False)
        run_dir, _, overrides = backend.prepare_round(rows, round_index=1, model_path=model)
        [given] = [o.removeprefix(f"{key}=") for o in overrides if o.startswith(f"{key}=")]
        assert given[0] == given[-1] == "'", name  # quoted JSON of ids: nothing inside to escape
        override = given[1:-1]
        ends = stop_token_ids(AutoTokenizer.from_pretrained(model), model)
        assert _sglang_stops(model, override) == set(ends), name
        assert not (run_dir / "rollout-generation-config").exists(), name
        overrides_by_family[name] = overrides
    phi = tmp_path / "models" / "phi4-bare"
    end = AutoTokenizer.from_pretrained(phi).convert_tokens_to_ids("<|end|>")
    assert end not in _sglang_stops(phi, "{}")  # what the model folder alone gives SGLang

    # verl's own Hydra composes the override into the keyword arguments it gives ServerArgs.
    request = tmp_path / "overrides.json"
    request.write_text(json.dumps(overrides_by_family["phi4-bare"]))
    done = _run_in_verl(verl_python, "-c", _COMPOSE_IN_VERL, request)
    sglang_kwargs = json.loads(done.stdout.strip().splitlines()[-1])
    ends = stop_token_ids(AutoTokenizer.from_pretrained(phi), phi)
    assert json.loads(sglang_kwargs["json_model_override_args"]) == {"eos_token_id": ends}


def test_quantized_sglang_rollouts_are_refused() -> None:
    """verl puts an FP8 rollout's quantization config in SGLang's json_model_override_args, which
    the round's end tokens take: such a rollout would load unquantized; it is refused by name."""
    with pytest.raises(ValueError, match="quantize SGLang rollouts"):
        VerlSettings(rollout_engine="sglang", extra_overrides=["actor_rollout_ref.rollout.quantization=fp8"])
    VerlSettings(rollout_engine="vllm", extra_overrides=["actor_rollout_ref.rollout.quantization=fp8"])
    VerlSettings(rollout_engine="sglang", extra_overrides=["actor_rollout_ref.rollout.quantization=null"])


# --- verl itself, in its own environment ---------------------------------------------------------


def _verl_python() -> Path:
    candidate = Path(os.environ.get(VERL_PYTHON_ENV) or DEFAULT_VERL_PYTHON)
    if candidate.exists():
        return candidate
    require("verl", False, f"no environment at {candidate}: create it with scripts/install-verl.sh")
    raise AssertionError("unreachable")


@pytest.fixture(scope="module")
def verl_python() -> Path:
    return _verl_python()


def _run_in_verl(
    verl_python: Path, *args: str | Path, timeout: float = 600
) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [str(verl_python), *map(str, args)],
        env=verl_environment(reward_core_path(Path(tempfile.gettempdir()) / "looptool-test-reward-core")),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-5000:]
    return done


def test_verl_validates_loads_and_rewards_the_round_we_wrote(
    verl_python: Path, tiny_model: Path, tmp_path: Path
) -> None:
    samples = _samples()
    # sdpa attention (no flash-attn): also checks that the "+" override verl needs for it composes
    settings = VerlSettings(
        python=verl_python,
        n_gpus_per_node=1,
        train_batch_size=4,
        ppo_mini_batch_size=2,
        attn_implementation="sdpa",
    )
    backend = VerlBackend(settings, tmp_path / "work", show_progress=False)
    run_dir, plan, overrides = backend.prepare_round(
        _rows(),
        round_index=1,
        model_path=tiny_model,
    )
    wrong = render_action(Action(calls=[ToolCall(name="get_weather", arguments={"city": "Atlantis"})]))
    cases = [
        {"index": 0, "response": render_action(samples[0].label), "expected": 1.0},
        {
            "index": 0,
            "response": "<think>the user asks about Paris</think>" + render_action(samples[0].label),
            "expected": 1.0,
        },
        {"index": 1, "response": render_action(samples[0].label), "expected": 0.0},  # Paris for Lyon
        {"index": 6, "response": render_action(samples[6].label), "expected": 1.0},  # multi-turn step
        {"index": 6, "response": wrong, "expected": 0.0},
        {"index": 7, "response": "I cannot tell jokes, sorry.", "expected": 1.0},  # no-call answer
        {"index": 7, "response": render_action(samples[0].label), "expected": 0.0},
        {"index": 2, "response": "no tool call at all", "expected": 0.0},
        # cut off at the response budget: a text answer no longer matches the no-call label
        {"index": 7, "response": "I cannot tell jokes, sorry. ", "cut_off": True, "expected": 0.0},
    ]
    request = tmp_path / "request.json"
    request.write_text(json.dumps({"overrides": overrides, "cases": cases}))
    result_path = tmp_path / "result.json"

    _run_in_verl(verl_python, DATA / "verl_env_check.py", request, result_path)
    result = json.loads(result_path.read_text())

    assert result["verl_version"] == "0.9.1"
    # GRPO without KL: no critic and no reference model
    assert result["need_critic"] is False and result["need_reference_policy"] is False
    resolved = result["config"]
    actor = resolved["actor_rollout_ref"]["actor"]
    rollout = resolved["actor_rollout_ref"]["rollout"]
    assert actor["optim"]["lr"] == 1e-6
    assert (actor["clip_ratio_low"], actor["clip_ratio_high"]) == (0.2, 0.28)
    assert actor["use_kl_loss"] is False and actor["entropy_coeff"] == 0
    assert actor["ppo_mini_batch_size"] == plan.ppo_mini_batch_size
    assert (rollout["n"], rollout["temperature"], rollout["gpu_memory_utilization"]) == (16, 1.0, 0.7)
    assert result["rollout"] == {"prompt_length": 4096, "response_length": 1024}
    assert resolved["algorithm"]["adv_estimator"] == "grpo"
    assert resolved["reward"]["custom_reward_function"] == {
        "path": "pkg://toolcall.reward",
        "name": "compute_score",
    }
    assert resolved["trainer"]["total_epochs"] == 2 and resolved["trainer"]["resume_mode"] == "disable"
    assert resolved["actor_rollout_ref"]["model"]["path"] == str(tiny_model)
    assert resolved["actor_rollout_ref"]["model"]["override_config"] == {"attn_implementation": "sdpa"}
    assert resolved["actor_rollout_ref"]["model"]["use_remove_padding"] is False
    # vLLM's rollouts read the round's generation config, which holds the probe's ends
    assert rollout["engine_kwargs"]["vllm"] == {
        "generation_config": str(run_dir / "rollout-generation-config")
    }

    # verl's dataset holds every row, as written, and batches them as the plan says
    assert result["dataset_len"] == len(samples)
    assert result["steps_per_epoch"] == result["dataloader_batches"] == plan.steps_per_epoch
    assert result["batch_size"] == plan.train_batch_size
    assert {"raw_prompt", "data_source", "reward_model", "extra_info", "index"} <= set(result["batch_keys"])
    for index, (item, sample) in enumerate(zip(result["items"], samples, strict=True)):
        assert item["raw_prompt"] == build_chat(sample.tools, sample.messages)
        assert item["data_source"] == DATA_SOURCE
        assert item["index"] == index
        assert item["extra_info"]["sample_id"] == f"sample-{index}"

    # verl's reward loop called our compute_score through our reward manager
    scores = [score["reward_score"] for score in result["scores"]]
    assert scores == [case["expected"] for case in cases]
    truncated = [score["reward_extra_info"]["truncated"] for score in result["scores"]]
    assert truncated == [float(bool(case.get("cut_off"))) for case in cases]
    assert resolved["reward"]["reward_manager"]["source"] == "importlib"
    assert resolved["reward"]["reward_manager"]["name"] == "ToolMatchRewardManager"
    assert run_dir.name == "round-001"


def _markup_marked_special(model: Path, target: Path) -> Path:
    """A copy of ``model`` whose tokenizer marks the tool-call tags special, as some chat models'
    tokenizers do (so a decode that skips special tokens loses them)."""
    from trainer.tiny_policy import MARKUP_TOKENS

    shutil.copytree(model, target)
    tokenizer_json = json.loads((target / "tokenizer.json").read_text())
    for token in tokenizer_json["added_tokens"]:
        if token["content"] in MARKUP_TOKENS:
            token["special"] = True
    (target / "tokenizer.json").write_text(json.dumps(tokenizer_json))
    config = json.loads((target / "tokenizer_config.json").read_text())
    for token in config.get("added_tokens_decoder", {}).values():
        if token["content"] in MARKUP_TOKENS:
            token["special"] = True
    (target / "tokenizer_config.json").write_text(json.dumps(config))
    return target


def test_verl_rewards_a_call_whose_tags_the_tokenizer_marks_special(
    verl_python: Path, tiny_model: Path, tmp_path: Path
) -> None:
    from transformers import AutoTokenizer

    model = _markup_marked_special(tiny_model, tmp_path / "special-markup")
    samples = _samples()
    call = render_action(samples[0].label)
    tokenizer = AutoTokenizer.from_pretrained(model)
    ids = tokenizer(call, add_special_tokens=False)["input_ids"]
    assert "<tool_call>" not in tokenizer.decode(ids, skip_special_tokens=True)  # the copy is as meant
    assert "<think>" in tokenizer.get_vocab()

    settings = VerlSettings(python=verl_python, n_gpus_per_node=1, train_batch_size=4, ppo_mini_batch_size=2)
    backend = VerlBackend(settings, tmp_path / "work", show_progress=False)
    _, _, overrides = backend.prepare_round(_rows(), round_index=1, model_path=model)
    traced = "<think>the user asks about Paris</think>\n" + call
    cases = [
        {"index": 0, "response": call, "expected": 1.0},
        # without its tags, the trace would run into the call: a call amid text, no call read
        {"index": 0, "response": traced, "expected": 1.0},
        {"index": 7, "response": traced, "expected": 0.0},  # a call where the label is a text answer
    ]
    request = tmp_path / "request.json"
    request.write_text(json.dumps({"overrides": overrides, "cases": cases}))
    result_path = tmp_path / "result.json"
    _run_in_verl(verl_python, DATA / "verl_env_check.py", request, result_path)
    scores = [score["reward_score"] for score in json.loads(result_path.read_text())["scores"]]
    assert scores == [case["expected"] for case in cases]


def test_verl_reads_a_rollout_from_inside_the_trace_its_prompt_opened(
    verl_python: Path, tmp_path: Path
) -> None:
    """A template whose generation prompt opens the trace (Qwen3-Thinking-2507, R1 distills): the
    rollout starts inside it, so a call drafted there with no </think> after it is no answer. The
    manager read it as a call and rewarded it; it now decides from the prompt verl rendered, by the
    probe's rule (toolcall.templates.prompt_opens_trace)."""
    from tests.families import build_family_model

    model = build_family_model("qwen3_thinking", tmp_path / "qwen3_thinking")
    settings = VerlSettings(python=verl_python, n_gpus_per_node=1, train_batch_size=4, ppo_mini_batch_size=2)
    backend = VerlBackend(settings, tmp_path / "work", show_progress=False)
    _, _, overrides = backend.prepare_round(_rows(), round_index=1, model_path=model)
    call = render_action(_samples()[0].label)
    cases = [
        {"index": 0, "response": f"The user asks about Paris: {call}", "expected": 0.0},
        {"index": 0, "response": f"The user asks about Paris.</think>\n\n{call}", "expected": 1.0},
    ]
    request = tmp_path / "request.json"
    request.write_text(json.dumps({"overrides": overrides, "cases": cases}))
    result_path = tmp_path / "result.json"
    _run_in_verl(verl_python, DATA / "verl_env_check.py", request, result_path)
    scores = [score["reward_score"] for score in json.loads(result_path.read_text())["scores"]]
    assert scores == [case["expected"] for case in cases]


_VERL_END_TOKENS = """
import json, sys
from pathlib import Path
from verl.utils import hf_tokenizer
from looptool_reward_manager import end_token_ids
folders = json.loads(Path(sys.argv[1]).read_text())
ends = {f: sorted(end_token_ids(hf_tokenizer(f, trust_remote_code=True), f)) for f in folders}
Path(sys.argv[2]).write_text(json.dumps(ends))
"""


def _family_folders(root: Path, names: Sequence[str]) -> dict[str, Path]:
    """Each family's tiny model folder, and a copy of it without generation_config.json (as some
    exported folders are), keyed ``name`` and ``name-bare``."""
    from tests.families import build_family_model

    folders = {}
    for name in names:
        folders[name] = build_family_model(name, root / name)
        bare = shutil.copytree(folders[name], root / f"{name}-bare")
        (bare / "generation_config.json").unlink()
        folders[f"{name}-bare"] = bare
    return folders


def test_verls_reward_manager_ends_a_response_where_the_probe_does_for_every_family(
    verl_python: Path, tmp_path: Path
) -> None:
    """The manager read "cut off" from the tokenizer's EOS and generation_config.json only: the chat
    template's end-of-turn token (Phi's <|end|>, Gemma's <end_of_turn> in a folder without
    generation_config.json) ended a completion for the probe but not under verl. Both now use one rule
    (toolcall.templates.end_token_ids), the manager from verl's own environment."""
    from transformers import AutoTokenizer

    from inference.vllm_backend import stop_token_ids
    from tests.families import FAMILIES

    folders = _family_folders(tmp_path, list(FAMILIES))
    request, result = tmp_path / "folders.json", tmp_path / "ends.json"
    request.write_text(json.dumps([str(folder) for folder in folders.values()]))
    _run_in_verl(verl_python, "-c", _VERL_END_TOKENS, request, result)
    under_verl = json.loads(result.read_text())
    for name, folder in folders.items():
        tokenizer = AutoTokenizer.from_pretrained(folder)
        assert under_verl[str(folder)] == stop_token_ids(tokenizer, folder), name
    turn_ends = {"phi4-bare": "<|end|>", "gemma2-bare": "<end_of_turn>", "qwen3-bare": "<|im_end|>"}
    for name, end in turn_ends.items():
        end_id = AutoTokenizer.from_pretrained(folders[name]).convert_tokens_to_ids(end)
        assert end_id in under_verl[str(folders[name])], name


def test_verl_scores_a_rollout_that_closes_its_turn_on_the_budgets_last_token_as_finished(
    verl_python: Path, tmp_path: Path
) -> None:
    """A Phi answer closed with <|end|> as the budget's last token was read as cut off under verl (no
    generation_config.json names <|end|>), so a text answer to a no-call label scored 0 where the
    probe counts it a match. Through verl's reward loop, as the trainer runs it."""
    model = _family_folders(tmp_path / "models", ["phi4"])["phi4-bare"]
    settings = VerlSettings(
        python=verl_python,
        n_gpus_per_node=1,
        train_batch_size=4,
        ppo_mini_batch_size=2,
        max_prompt_length=16384,
        max_response_length=64,
    )
    backend = VerlBackend(settings, tmp_path / "work", show_progress=False)
    _, _, overrides = backend.prepare_round(_rows(), round_index=1, model_path=model)
    answer = "I cannot tell jokes, sorry. "
    closed = {"index": 7, "response": answer, "fill": True, "expected": 1.0, "truncated": 0.0}
    cases = [
        {**closed, "end": "<|end|>"},  # the template's end of turn: finished, as for the probe
        {**closed, "end": "<|endoftext|>"},  # the tokenizer's EOS
        {"index": 7, "response": answer, "cut_off": True, "expected": 0.0, "truncated": 1.0},
    ]
    request = tmp_path / "request.json"
    request.write_text(json.dumps({"overrides": overrides, "cases": cases}))
    result_path = tmp_path / "result.json"
    _run_in_verl(verl_python, DATA / "verl_env_check.py", request, result_path)
    scores = json.loads(result_path.read_text())["scores"]
    truncated = [score["reward_extra_info"]["truncated"] for score in scores]
    assert truncated == [case["truncated"] for case in cases]
    assert [score["reward_score"] for score in scores] == [case["expected"] for case in cases]


# How each dated family writes 14 Mar 2025 and 01 Dec 2024 in its prompt.
_DATE_LINES = {
    "llama3": ("Today Date: 14 Mar 2025\n", "Today Date: 01 Dec 2024\n"),
    "gpt_oss": ("Current date: 2025-03-14\n", "Current date: 2024-12-01\n"),
    "smollm3": ("Today Date: 14 March 2025\n", "Today Date: 01 December 2024\n"),
}


@pytest.mark.parametrize("family", list(_DATE_LINES))
def test_verl_dates_a_prompt_as_the_probe_does_not_by_the_machines_clock(
    verl_python: Path, tmp_path: Path, family: str
) -> None:
    """verl renders its rollouts' prompts itself, with one set of chat-template kwargs for every row,
    and passed none: a Llama 3.x template stamped "Today Date:" from the machine's clock, so verl
    trained on other prompts than the probe scored (and on other ones from day to day). The round
    now gives verl the conversation date most of its rows state (data.apply_chat_template_kwargs);
    a row stating another date still gets the round's under verl, as verl has no per-row kwargs.
    gpt-oss's "Current date:" and SmolLM3's "Today Date:" come from strftime_now alone, a callable
    no override carries: they kept the machine's date until the round passed verl the model's
    template with that date in it (custom_chat_template)."""
    from transformers import AutoTokenizer

    from inference.transformers_backend import encode_prompt
    from tests.families import build_family_model

    model = build_family_model(family, tmp_path / family)
    times = ["2025-03-14 10:00:00"] * 6 + ["2024-12-01 08:00:00"] * 2
    rows = [
        VerlRow.from_sample(f"sample-{i}", sample, time)
        for i, (sample, time) in enumerate(zip(_samples(), times, strict=True))
    ]
    settings = VerlSettings(
        python=verl_python,
        n_gpus_per_node=1,
        train_batch_size=4,
        ppo_mini_batch_size=2,
        max_prompt_length=16384,
    )
    backend = VerlBackend(settings, tmp_path / "work", show_progress=False)
    _, plan, overrides = backend.prepare_round(rows, round_index=1, model_path=model)
    assert plan.rows == len(rows)
    assert "+data.apply_chat_template_kwargs.date_string='14 Mar 2025'" in overrides
    request = tmp_path / "request.json"
    request.write_text(json.dumps({"overrides": overrides, "cases": []}))
    result_path = tmp_path / "result.json"
    _run_in_verl(verl_python, DATA / "verl_env_check.py", request, result_path)
    under_verl = json.loads(result_path.read_text())["rollout_prompt_ids"]

    tokenizer = AutoTokenizer.from_pretrained(model)
    rounds_line, other_line = _DATE_LINES[family]
    for index, (row, ids) in enumerate(zip(rows, under_verl, strict=True)):
        assert rounds_line in tokenizer.decode(ids), index
        if index < 6:  # the round's date: verl's prompt is the probe's, token for token
            assert ids == encode_prompt(tokenizer, row.chat), index
        else:  # another date: the probe writes its own (the gap verl leaves, docs/gpu.md)
            assert other_line in tokenizer.decode(encode_prompt(tokenizer, row.chat))


def test_a_template_with_a_fixed_clock_formats_the_date_as_strftime_does_wherever_it_asks() -> None:
    """gpt-oss's template asks strftime_now from inside a macro, SmolLM3's at its top level; either
    gets the given date (not the renderer's clock), formatted as the probe's strftime_now would."""
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    from toolcall.prompts import date_template_kwargs, template_with_fixed_clock

    # As Hugging Face compiles chat templates.
    environment = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    template = (
        "\n{%- macro system() -%}{{ strftime_now(format) }}{%- endmacro -%}\n"
        "[{{ system() }}|{{ strftime_now(format) }}]"
    )
    date = datetime.date(2025, 3, 7)
    formats = ("%Y-%m-%d", "%d %B %Y", "%d %b %Y", "%B %-d, %Y", "%a %j %H:%M %p", "100%% by %Y", "%%Y")
    for format in formats:
        fixed = environment.from_string(template_with_fixed_clock(template, date))
        machine_clock = fixed.render(format=format, strftime_now=lambda _: "the machine's clock")
        expected = date_template_kwargs(date)["strftime_now"](format)
        assert machine_clock == f"[{expected}|{expected}]", format
    assert environment.from_string(template_with_fixed_clock("\nA", date)).render() == "\nA"


def test_verl_renders_a_qwen3_prompt_with_the_policys_switches_as_the_probe_does(
    verl_python: Path, tmp_path: Path
) -> None:
    """[policy] chat_template_kwargs = {enable_thinking = false}: verl's agent loop rendered its
    rollouts' prompts with the round's date only, without Qwen3's empty reasoning block the probe's
    prompts end with. Through verl's own token builder, its prompts are now the probe's."""
    from transformers import AutoTokenizer

    from inference.transformers_backend import encode_prompt
    from tests.families import build_family_model

    switches = {"enable_thinking": False}
    model = build_family_model("qwen3", tmp_path / "qwen3")
    settings = VerlSettings(
        python=verl_python,
        n_gpus_per_node=1,
        train_batch_size=4,
        ppo_mini_batch_size=2,
        max_prompt_length=16384,
    )
    backend = VerlBackend(settings, tmp_path / "work", show_progress=False, chat_template_kwargs=switches)
    rows = _rows()
    _, _, overrides = backend.prepare_round(rows, round_index=1, model_path=model)
    assert "+data.apply_chat_template_kwargs.enable_thinking=false" in overrides
    request = tmp_path / "request.json"
    request.write_text(json.dumps({"overrides": overrides, "cases": []}))
    result_path = tmp_path / "result.json"
    _run_in_verl(verl_python, DATA / "verl_env_check.py", request, result_path)
    under_verl = json.loads(result_path.read_text())["rollout_prompt_ids"]
    tokenizer = AutoTokenizer.from_pretrained(model)
    for index, (row, ids) in enumerate(zip(rows, under_verl, strict=True)):
        assert tokenizer.decode(ids).endswith("<|im_start|>assistant\n<think>\n\n</think>\n\n"), index
        assert ids == encode_prompt(tokenizer, row.chat, switches), index


def test_hydra_parses_a_table_valued_switch_back_to_the_table(verl_python: Path) -> None:
    switches = {"tool_options": {"strict": True, "order": ["a", "b"], "depth": 2, "note": "x y"}}
    override = f"+data.apply_chat_template_kwargs.tool_options={hydra_value(switches['tool_options'])}"
    script = (
        "import json, sys\n"
        "from hydra.core.override_parser.overrides_parser import OverridesParser\n"
        "(parsed,) = OverridesParser.create().parse_overrides([sys.argv[1]])\n"
        "print(json.dumps(parsed.value()))\n"
    )
    done = _run_in_verl(verl_python, "-c", script, override)
    assert json.loads(done.stdout.strip().splitlines()[-1]) == switches["tool_options"]


def test_a_rounds_date_is_the_one_most_rows_state_and_the_earliest_among_equals() -> None:
    from trainer.verl.data import round_date

    def rows(*times: str) -> list[VerlRow]:
        return [VerlRow.from_sample(f"s{i}", _samples()[0], time) for i, time in enumerate(times)]

    march_14, december_1 = datetime.date(2025, 3, 14), datetime.date(2024, 12, 1)
    assert round_date(rows("2025-03-14 10:00:00", "2025-03-14 23:00:00")) == (march_14, {"14 Mar 2025": 2})
    assert round_date(rows("2025-03-14 10:00:00", "2024-12-01 08:00:00"))[0] == december_1
    many = rows("2025-03-14 10:00:00", "2024-12-01 08:00:00", "2025-03-14 11:00:00")
    assert round_date(many) == (march_14, {"14 Mar 2025": 2, "01 Dec 2024": 1})


def test_rows_are_written_in_the_form_the_models_template_accepts(tmp_path: Path) -> None:
    """verl renders the parquet's chats itself: a Gemma 2 template refuses the system turn (and a
    Mistral one repeated roles), so the round stopped on its first row. Rows are written as the probe
    renders them: the system text in the first user turn."""
    from jinja2 import TemplateError
    from transformers import AutoTokenizer

    from tests.families import build_family_model

    model = build_family_model("gemma2", tmp_path / "gemma2")
    rows = _rows()[:4]
    tokenizer = AutoTokenizer.from_pretrained(model)
    with pytest.raises(TemplateError):
        tokenizer.apply_chat_template(rows[0].chat, add_generation_prompt=True, tokenize=False)

    backend = VerlBackend(VerlSettings(python=Path(sys.executable)), tmp_path / "work", show_progress=False)
    run_dir, plan, _ = backend.prepare_round(rows, round_index=1, model_path=model)
    chats = [
        json.loads(prompt) if isinstance(prompt, str) else prompt
        for prompt in pq.read_table(run_dir / "train.parquet").column("prompt").to_pylist()
    ]
    assert plan.rows == len(rows)
    for chat, row in zip(chats, rows, strict=True):
        assert chat[0]["role"] == "user" and "system" not in {message["role"] for message in chat}
        assert row.chat[0]["content"] in chat[0]["content"]  # the system text, folded in
        tokenizer.apply_chat_template(chat, add_generation_prompt=True, tokenize=False)  # renders


def test_merge_turns_a_verl_fsdp_checkpoint_into_a_loadable_hf_folder(
    verl_python: Path, tiny_model: Path, tmp_path: Path
) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    checkpoints = tmp_path / "checkpoints"
    _run_in_verl(verl_python, DATA / "verl_fsdp_checkpoint.py", tiny_model, checkpoints, 3)
    step, actor = latest_checkpoint(checkpoints)
    assert (step, actor) == (3, checkpoints / "global_step_3" / "actor")

    backend = VerlBackend(VerlSettings(python=verl_python), tmp_path, show_progress=False)
    target = backend.merge(
        verl_python, actor, tmp_path / "model", source_model=tiny_model, log_path=tmp_path / "m.log"
    )

    model = AutoModelForCausalLM.from_pretrained(target)
    expected = torch.load(checkpoints / "expected_state.pt")
    merged = model.state_dict()
    for name, tensor in expected.items():
        # verl's merger writes bfloat16 weights
        assert torch.equal(merged[name].float(), tensor.to(torch.bfloat16).float()), name
    assert not torch.equal(expected["model.norm.weight"], torch.ones_like(expected["model.norm.weight"]))
    tokenizer = AutoTokenizer.from_pretrained(target)
    original = AutoTokenizer.from_pretrained(tiny_model)
    chat = [{"role": "user", "content": "hi"}]
    assert tokenizer.apply_chat_template(chat, tokenize=False, add_generation_prompt=True) == (
        original.apply_chat_template(chat, tokenize=False, add_generation_prompt=True)
    )


def test_launch_runs_verls_main_and_reports_its_failure_on_a_machine_without_gpu(
    verl_python: Path, tiny_model: Path, tmp_path: Path
) -> None:
    probe = subprocess.run(
        [str(verl_python), "-c", "import torch; print(torch.cuda.is_available())"],
        capture_output=True,
        text=True,
        check=True,
    )
    if probe.stdout.strip() == "True":
        pytest.skip("a GPU is present: this test checks the failure path of a CPU-only machine")
    settings = VerlSettings(
        python=verl_python,
        n_gpus_per_node=1,
        train_batch_size=4,
        ppo_mini_batch_size=2,
        # Ray's dashboard only slows the start on a small CI machine
        extra_overrides=["+ray_kwargs.ray_init.include_dashboard=false"],
    )
    backend = VerlBackend(settings, tmp_path / "work", show_progress=False)

    # the preflight names what the CPU environment lacks for training
    with pytest.raises(VerlRunError, match="cannot import"):
        backend.preflight(verl_python)

    run_dir, plan, overrides = backend.prepare_round(
        _rows(),
        round_index=1,
        model_path=tiny_model,
    )
    with pytest.raises(VerlRunError, match="exited with status") as failure:
        backend.launch(verl_python, run_dir, plan, overrides, round_index=1)
    log_text = (run_dir / "verl.log").read_text()
    # verl parsed our command line and accepted the config before failing further on
    assert "[validate_config] All configuration checks passed successfully!" in log_text
    assert failure.value.log_path == run_dir / "verl.log"
    assert failure.value.tail and failure.value.tail[-1] in log_text
    assert not (run_dir / "checkpoints" / "latest_checkpointed_iteration.txt").exists()


def test_a_non_editable_install_gives_verl_only_the_reward_core(tmp_path: Path, verl_python: Path) -> None:
    """Installed as a wheel, the project lives in site-packages: verl's processes must still see only
    ``toolcall``, never that site-packages (its transformers would shadow the one verl pins)."""
    uv = shutil.which("uv")
    assert uv is not None, "uv is installed by scripts/install.sh"
    repo = Path(__file__).resolve().parents[2]
    subprocess.run([uv, "build", "--wheel", "--out-dir", str(tmp_path / "dist"), str(repo)], check=True)
    [wheel] = (tmp_path / "dist").glob("*.whl")
    venv = tmp_path / "installed"
    subprocess.run([uv, "venv", "--quiet", "--python", sys.executable, str(venv)], check=True)
    python = venv / "bin" / "python"
    # Only what trainer.verl.process imports; --no-deps keeps torch and the rest out of this check.
    subprocess.run(
        [uv, "pip", "install", "--quiet", "--python", str(python), "--no-deps", str(wheel)], check=True
    )
    subprocess.run(
        [uv, "pip", "install", "--quiet", "--python", str(python), "pydantic", "structlog"], check=True
    )
    script = (
        "import json, sys, toolcall\n"
        "from pathlib import Path\n"
        "from trainer.verl.process import reward_core_path, verl_environment\n"
        "core = reward_core_path(Path(sys.argv[1]))\n"
        "print(json.dumps({'pythonpath': verl_environment(core)['PYTHONPATH'],\n"
        "                  'toolcall': str(Path(toolcall.__file__).resolve().parent)}))\n"
    )
    done = subprocess.run(
        [str(python), "-c", script, str(tmp_path / "reward-core")],
        cwd=tmp_path,  # not the checkout: the installed package must be what is imported
        capture_output=True,
        text=True,
        check=True,
    )
    seen = json.loads(done.stdout)
    site_packages = str(venv / "lib")
    assert seen["toolcall"].startswith(site_packages)  # the wheel's copy, not the checkout's
    assert seen["pythonpath"] == str(tmp_path / "reward-core")
    assert not seen["pythonpath"].startswith(site_packages)
    core = tmp_path / "reward-core"
    assert sorted(p.name for p in core.iterdir()) == ["looptool_reward_manager.py", "toolcall"]
    assert str((core / "looptool_reward_manager.py").resolve()).startswith(site_packages)
    # In verl's environment with that PYTHONPATH: our reward imports, our other packages do not, and
    # transformers is verl's own.
    probe = (
        "import importlib.util, transformers, toolcall.reward, looptool_reward_manager\n"
        "print(transformers.__file__, importlib.util.find_spec('streams') is None)\n"
    )
    env = {**os.environ, "PYTHONPATH": seen["pythonpath"]}
    done = subprocess.run(
        [str(verl_python), "-c", probe], env=env, capture_output=True, text=True, check=True, cwd=tmp_path
    )
    transformers_file, no_streams = done.stdout.split()
    assert no_streams == "True"
    assert (
        not transformers_file.startswith(site_packages)
        and str(repo / ".venv" / "lib") not in transformers_file
    )


def test_run_streaming_stops_the_group_when_asked(tmp_path: Path) -> None:
    """Ctrl-C or SIGTERM of `looptool train` left verl running for the rest of its round."""
    pids: list[str] = []
    stop = threading.Event()
    threading.Timer(2.0, stop.set).start()
    started = time.monotonic()
    run = run_streaming(
        [sys.executable, "-c", PARENT_AND_CHILD],
        env=os.environ,
        cwd=tmp_path,
        log_path=tmp_path / "out.log",
        on_line=pids.append,
        stop=stop,
    )
    assert run.stopped and not run.timed_out and time.monotonic() - started < 60
    assert not _running(int(pids[0]))
    assert "stop requested" in (tmp_path / "out.log").read_text()


def test_a_killed_trainer_takes_its_verl_driver_with_it(tmp_path: Path) -> None:
    """SIGKILL of `looptool train` left verl's driver alive (and a restarted trainer would have
    started a second verl on the same GPUs); the driver now gets SIGTERM when its parent dies."""
    driver = "import os, time; print(os.getpid(), flush=True); time.sleep(120)"
    trainer = (
        "import os, sys\n"
        "from pathlib import Path\n"
        "from trainer.verl.process import run_streaming\n"
        f"run_streaming([sys.executable, '-c', {driver!r}], env=os.environ, cwd=Path({str(tmp_path)!r}), "
        f"log_path=Path({str(tmp_path / 'driver.log')!r}), on_line=lambda line: print(line, flush=True))\n"
    )
    process = subprocess.Popen(
        [sys.executable, "-c", trainer],
        cwd=Path(__file__).resolve().parents[2],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    driver_pid = int(process.stdout.readline())
    assert _running(driver_pid)
    process.kill()
    process.wait(timeout=30)
    deadline = time.monotonic() + 30
    while _running(driver_pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _running(driver_pid)
