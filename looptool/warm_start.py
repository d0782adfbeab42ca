"""The demo policy's warm start, built once and cached on disk, keyed by a hash of its inputs.

A real LoopTool run starts from a pretrained instruct model that already calls tools about right
most of the time (the paper's regime: the probe finds it wrong on a minority of samples). The demo's
tiny Qwen2 is trained from scratch, so it gets that competence from a supervised warm start:

- further dialogues of the same synthetic world, with D_seed's label-noise rate and mix (no cleaner
  than what the loop gets), sharing no context with the seeds or the clean held-out set (the
  held-out set stays disjoint from everything trained on, and the probe never checks a sample the
  warm start memorised);
- copy drills (:mod:`world.drills`), the span copying a base model brings from pre-training;
- a tokenizer trained on the world's text and a randomly initialised policy
  (:func:`trainer.tiny_policy.build_tiny_policy`), then the SFT (:func:`trainer.sft.sft_warm_start`).

Building it takes minutes on two cores, so the result is kept under ``cache_dir/<key>``, where the
key hashes everything it is made from: the recipe, the warm-start rows and the tokenizer corpus as
text, the source of the code that builds and trains it, and the torch/transformers versions. Any
change there gives a new key and a rebuild; the first build's time is recorded with the cache entry
and reported on its own.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import random
import resource
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from common.logs import get_logger

log = get_logger(__name__)
WARM_START_INFO = "warm_start.json"
# Code whose change must rebuild a cached warm start (besides this module).
_BUILD_CODE = ("trainer/sft.py", "trainer/tiny_policy.py", "world/drills.py")


@dataclass(frozen=True)
class WarmStartRecipe:
    """How the tiny policy is made and warm-started."""

    dialogues: int  # further world dialogues (their samples, deduplicated, are the warm-start set)
    copy_drills: int
    hidden: int
    layers: int
    steps: int
    batch_size: int = 16
    learning_rate: float = 2e-3
    schedule: str = "cosine"  # a transformers scheduler name
    warmup_ratio: float = 0.05
    vocab_size: int = 2048
    drill_two_requests: float = 0.0  # share of drills with two requests answered by two calls
    spaced_words: bool = False  # entity values also as " value" tokens (trainer.tiny_policy)
    # Share of parallel-call dialogues in the warm-start set (None: the world's own mix, 20%): the
    # kind a small model learns last (it copies values across the two requests).
    parallel_share: float | None = None

    def mix(self) -> dict[str, float] | None:
        from world.dialogues import DEFAULT_MIX

        if self.parallel_share is None:
            return None
        rest = sum(weight for kind, weight in DEFAULT_MIX.items() if kind != "parallel")
        return {
            kind: self.parallel_share if kind == "parallel" else weight / rest * (1 - self.parallel_share)
            for kind, weight in DEFAULT_MIX.items()
        }


@dataclass(frozen=True)
class WarmStart:
    """A built (or cached) warm start."""

    key: str
    folder: Path
    initial: Path  # the random-init policy with its tokenizer
    model: Path  # the policy after the SFT warm start: round 1's starting point
    cached: bool  # True: taken from the cache, not built by this call
    build_s: float  # wall time of the (first) build
    build_cpu_s: float
    samples: int  # world samples it trained on
    sample_noise: float  # their share of wrong labels
    drills: int
    sft: dict[str, float]


def _cpu_seconds() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    return own.ru_utime + own.ru_stime


def samples_jsonl(samples: Sequence[Any]) -> str:
    """Samples as ingest-format JSONL (what ``[trainer] sft_data`` reads)."""
    return "".join(
        json.dumps(
            {
                "tools": [{"type": "function", "function": tool.to_openai()} for tool in sample.tools],
                "messages": [m.model_dump(mode="json", exclude_defaults=True) for m in sample.messages],
                "label": sample.label.model_dump(mode="json", exclude_defaults=True),
            },
            # Key order kept (not canonical JSON): a drill's "fourth" must not sort before its "second".
            ensure_ascii=False,
        )
        + "\n"
        for sample in samples
    )


def tokenizer_corpus(samples: Sequence[Any], drills: Sequence[Any]) -> list[str]:
    """The policy-rendered text of the world's samples (and a few drills) the tokenizer learns from."""
    from toolcall.parsing import render_action
    from toolcall.prompts import build_chat
    from trainer.tiny_policy import IM_END, IM_START

    corpus = []
    for sample in [*samples, *drills[:50]]:
        chat = build_chat(sample.tools, sample.messages)
        chat.append({"role": "assistant", "content": render_action(sample.label)})
        corpus.append("".join(f"{IM_START}{m['role']}\n{m['content']}{IM_END}\n" for m in chat))
    return corpus


def build_world_policy(
    world: Any,
    samples: Sequence[Any],
    folder: Path,
    *,
    hidden: int,
    layers: int,
    seed: int,
    drills: Sequence[Any] = (),
    vocab_size: int = 2048,
    spaced_words: bool = False,
) -> Path:
    """The tiny policy: a tokenizer trained on the samples' text as the policy sees it, random init.

    The world's tool renderings and entity values are single tokens (see
    :func:`trainer.tiny_policy.train_tokenizer`), so choosing a tool and copying a value are
    choosing and copying one token.
    """
    from toolcall.prompts import prompt_phrases, render_tools
    from trainer.tiny_policy import build_tiny_policy
    from world.drills import RECORD_VALUES

    tools = [*(tool.spec for tool in world.toolset), RECORD_VALUES]
    return build_tiny_policy(
        folder,
        tokenizer_corpus(samples, drills),
        vocab_size=vocab_size,
        hidden_size=hidden,
        layers=layers,
        heads=hidden // 32,
        kv_heads=max(1, hidden // 64),
        intermediate=hidden * 3,
        seed=seed,
        max_position_embeddings=1024,
        phrases=[*prompt_phrases(), *(render_tools([tool]) for tool in tools)],
        words=world.vocabulary(),
        spaced_words=spaced_words,
    )


async def warm_start_data(
    world: Any, seed_set: Any, recipe: WarmStartRecipe, *, seed: int, noise_rate: float
) -> tuple[list[Any], list[Any]]:
    """(world samples, copy drills) the warm start trains on; see the module docstring."""
    from world.drills import copy_drills
    from world.seed import build_warm_start_samples

    warm = await build_warm_start_samples(
        world,
        recipe.dialogues,
        exclude=[*seed_set.samples, *seed_set.heldout],
        noise_rate=noise_rate,
        mix=recipe.mix(),
    )
    drills = copy_drills(
        world.vocabulary(),
        recipe.copy_drills,
        distractors=[t.spec for t in world.toolset],
        seed=seed,
        two_requests=recipe.drill_two_requests,
    )
    return warm, drills


def cache_key(recipe: WarmStartRecipe, seed: int, rows_text: str, corpus: Sequence[str]) -> str:
    """The key of a warm start: everything its weights depend on. The corpus is the samples as the
    policy sees them (rendered prompts and answers), so a change to how samples become prompts
    rebuilds it even when the samples do not change."""
    import tokenizers
    import torch
    import transformers

    root = Path(__file__).resolve().parents[1]
    digest = hashlib.sha256()
    for part in (
        json.dumps({"recipe": dataclasses.asdict(recipe), "seed": seed}, sort_keys=True),
        rows_text,
        "\x00".join(corpus),
        Path(__file__).read_text(encoding="utf-8"),
        *((root / path).read_text(encoding="utf-8") for path in _BUILD_CODE),
        torch.__version__,
        transformers.__version__,
        tokenizers.__version__,  # trains the policy's tokenizer
    ):
        digest.update(part.encode("utf-8"))
        digest.update(b"\x00")
    return digest.hexdigest()[:16]


async def cached_warm_start(
    world: Any,
    seed_set: Any,
    recipe: WarmStartRecipe,
    *,
    cache_dir: Path,
    seed: int,
    noise_rate: float,
    threads: int | None = None,
    show_progress: bool = True,
) -> WarmStart:
    """The warm start for this world, seed set and recipe: from ``cache_dir`` if built before."""
    import asyncio

    warm, drills = await warm_start_data(world, seed_set, recipe, seed=seed, noise_rate=noise_rate)
    samples = [item.sample for item in warm] + drills
    random.Random(f"warm-start-order-{seed}").shuffle(samples)
    rows_text = samples_jsonl(samples)
    corpus_samples = [item.sample for item in [*seed_set.samples, *warm]]
    corpus = tokenizer_corpus(corpus_samples, drills)
    key = cache_key(recipe, seed, rows_text, corpus)
    folder = Path(cache_dir) / key
    info_path = folder / WARM_START_INFO
    if info_path.exists():
        info = json.loads(info_path.read_text(encoding="utf-8"))
        log.info("warm_start.cached", key=key, folder=str(folder), build_s=info["build_s"])
        return _warm_start(folder, info, cached=True)

    started, cpu_started = time.monotonic(), _cpu_seconds()
    load_before = os.getloadavg()
    partial = folder.with_name(folder.name + f".partial-{os.getpid()}")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    (partial / "warmstart.jsonl").write_text(rows_text, encoding="utf-8")
    initial = build_world_policy(
        world,
        corpus_samples,
        partial / "initial",
        hidden=recipe.hidden,
        layers=recipe.layers,
        seed=seed,
        drills=drills,
        vocab_size=recipe.vocab_size,
        spaced_words=recipe.spaced_words,
    )
    from trainer.dataset import sample_row
    from trainer.sft import sft_warm_start

    rows = [sample_row(f"warm-{index}", sample) for index, sample in enumerate(samples)]
    result = await asyncio.to_thread(
        sft_warm_start,
        rows,
        init_model=initial,
        out_dir=partial / "sft",
        steps=recipe.steps,
        learning_rate=recipe.learning_rate,
        batch_size=recipe.batch_size,
        seed=seed,
        threads=threads,
        show_progress=show_progress,
        schedule=recipe.schedule,
        warmup_ratio=recipe.warmup_ratio,
    )
    info = {
        "key": key,
        "recipe": dataclasses.asdict(recipe),
        "seed": seed,
        "build_s": time.monotonic() - started,
        "build_cpu_s": _cpu_seconds() - cpu_started,
        "load_avg_before": list(load_before),
        "load_avg_after": list(os.getloadavg()),
        "samples": len(warm),
        "sample_noise": sum(item.noise is not None for item in warm) / max(1, len(warm)),
        "drills": len(drills),
        "sft": result.metrics(),
        "threads": threads,
    }
    (partial / WARM_START_INFO).write_text(json.dumps(info, indent=1), encoding="utf-8")
    if folder.exists():  # another process built the same key meanwhile: keep theirs
        shutil.rmtree(partial, ignore_errors=True)
        info = json.loads(info_path.read_text(encoding="utf-8"))
        return _warm_start(folder, info, cached=True)
    os.replace(partial, folder)
    log.info("warm_start.built", key=key, folder=str(folder), build_s=round(info["build_s"], 1))
    return _warm_start(folder, info, cached=False)


def _warm_start(folder: Path, info: dict[str, Any], *, cached: bool) -> WarmStart:
    return WarmStart(
        key=info["key"],
        folder=folder,
        initial=folder / "initial",
        model=folder / "sft",
        cached=cached,
        build_s=float(info["build_s"]),
        build_cpu_s=float(info["build_cpu_s"]),
        samples=int(info["samples"]),
        sample_noise=float(info["sample_noise"]),
        drills=int(info["drills"]),
        sft={k: float(v) for k, v in info["sft"].items()},
    )


def load_cached(folder: Path) -> WarmStart | None:
    """A warm start already in the cache, from its folder (None if ``folder`` holds none)."""
    info_path = Path(folder) / WARM_START_INFO
    if not info_path.exists():
        return None
    return _warm_start(Path(folder), json.loads(info_path.read_text(encoding="utf-8")), cached=True)
