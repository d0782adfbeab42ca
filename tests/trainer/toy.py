"""A trivially learnable toy task for the CPU trainer tests and the GRPO benchmark.

One tool, ``get_weather(city)``; the user asks for the weather in a city; the label calls the tool
with that city. The SFT warm start on all cities teaches the format (the tiny model then writes a
well-formed call with some city, rarely the asked one: it has not learned to copy); GRPO on the
"Paris" prompt then only has to shift probability towards one city, which a handful of steps does.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from schemas.events import CuratedSample, Event, Producer, RoundClosed, make_event
from toolcall.canonical import content_hash
from toolcall.parsing import render_action
from toolcall.prompts import build_chat, prompt_phrases, render_tools
from toolcall.specs import ToolSpec, load_tools
from toolcall.types import Action, Message, Sample, ToolCall
from trainer.base import RoundDataset, TrainingRow
from trainer.dataset import training_row

CITIES = ("Paris", "Berlin", "Tokyo", "Rome", "Oslo", "Lima", "Cairo", "Delhi")
WEATHER: ToolSpec = load_tools(
    [
        {
            "name": "get_weather",
            "description": "Current weather of a city.",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string", "description": "The city."}},
                "required": ["city"],
            },
        }
    ]
)[0]
PRODUCER = Producer(stage="test", version="0")


def weather_sample(city: str) -> Sample:
    return Sample(
        tools=[WEATHER],
        messages=[Message(role="user", content=f"What is the weather in {city} today?")],
        label=Action(calls=[ToolCall(name="get_weather", arguments={"city": city})]),
    )


def curated(city: str, round_: int = 1, source: str = "SEED") -> CuratedSample:
    sample = weather_sample(city)
    return CuratedSample(
        round=round_,
        sample_id=f"s-{city.lower()}",
        source=source,  # type: ignore[arg-type]
        tools=sample.tools,
        messages=sample.messages,
        label=sample.label,
        label_event_id=f"label-{city.lower()}",
        content_hash=sample.content_hash(),
    )


def rows(cities: Sequence[str] = CITIES) -> tuple[TrainingRow, ...]:
    return tuple(training_row(curated(city)) for city in cities)


def dataset(cities: Sequence[str] = CITIES, round_: int = 1) -> RoundDataset:
    members = rows(cities)
    digest = content_hash(sorted(weather_sample(city).content_hash() for city in cities))
    return RoundDataset(round=round_, rows=members, content_hash=digest, manifest_event_id="manifest")


def round_events(run_id: str, cities: Sequence[str] = CITIES, round_: int = 1) -> list[Event[object]]:
    """CuratedSample events for ``cities`` and the RoundClosed manifest after them (as curate writes)."""
    members = [make_event(curated(city, round_), run_id=run_id, producer=PRODUCER) for city in cities]
    manifest = make_event(
        RoundClosed(
            round=round_,
            total=len(members),
            counts={"SEED": len(members)},
            content_hash=content_hash(sorted(m.payload.content_hash for m in members)),
            target_size=len(members),
            seed_new_fraction=1.0,
        ),
        run_id=run_id,
        producer=PRODUCER,
    )
    return [*members, manifest]


def corpus() -> list[str]:
    """Texts the tiny tokenizer is trained on: the prompts and labels of the toy task."""
    texts: list[str] = []
    for city in CITIES:
        sample = weather_sample(city)
        texts.extend(message["content"] for message in build_chat(sample.tools, sample.messages))
        texts.append(render_action(sample.label))
    return texts


def phrases() -> tuple[str, ...]:
    """Fixed texts that become one token each: the Figure 7 instruction pieces and the tool list."""
    return (*prompt_phrases(), render_tools([WEATHER]))


def build_toy_policy(folder: Path, seed: int = 0, **shape: int) -> Path:
    """The tests' tiny Qwen2 policy (0.4 M parameters, head_dim 32 as vLLM needs)."""
    from trainer.tiny_policy import build_tiny_policy

    sizes = {"hidden_size": 128, "heads": 4, "kv_heads": 2, "intermediate": 256, "layers": 2, **shape}
    return build_tiny_policy(folder, corpus(), vocab_size=1024, seed=seed, phrases=phrases(), **sizes)
