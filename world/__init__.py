"""The synthetic tool world: a closed, offline stand-in for real tools, users and LLM roles.

It synthesises tools with the Hierarchical Dual-Tree method (:mod:`world.trees`), plays the four
dialogue roles from templates with executable backends (:mod:`world.dialogues`), injects realistic
label noise (:mod:`world.noise`), and knows the true answer to every request it can produce
(:class:`world.language.Oracle`), so runs can be scored and the judge, generator and verifier can be
simulated (:mod:`world.simulation`) when no LLM endpoint is configured.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

from toolcall.match import tool_match
from toolcall.specs import ToolSpec
from toolcall.types import Action, Message, Sample
from world.dialogues import DEFAULT_MIX, WorldRoles, choose_kind, dialogue_to_samples
from world.language import Oracle
from world.noise import DEFAULT_NOISE_MIX, add_noise
from world.trees import SynthesisedTool, synthesise_toolset


@dataclass(frozen=True)
class WorldSample:
    """A sample as given out (label possibly noisy) with what the world knows about it."""

    sample: Sample
    truth: Action
    kind: str
    noise: str | None = None


class World:
    """One deterministic world per seed: the same seed gives the same tools in every process."""

    def __init__(self, seed: int = 0):
        self.seed = seed
        self.toolset: list[SynthesisedTool] = synthesise_toolset(random.Random(f"world-tools-{seed}"))
        self.oracle = Oracle(self.toolset)
        self.roles = WorldRoles(self.toolset, self.oracle)

    def vocabulary(self) -> list[str]:
        """Every entity value the world can put in a request (for a small model's tokenizer)."""
        from world.language import AMOUNTS, CITIES, CURRENCIES, DATES, FLIGHTS, TICKERS, USERS, WORDS

        values = {*CITIES, *CURRENCIES, *TICKERS, *USERS, *WORDS, *FLIGHTS, *DATES, *map(str, AMOUNTS)}
        values |= {choice for tool in self.toolset for slot in tool.slots for choice in slot.choices}
        return sorted(values)

    def truth(self, tools: Sequence[ToolSpec], messages: Sequence[Message]) -> Action:
        return self.oracle.truth([t.name for t in tools], messages)

    def is_correct(self, tools: Sequence[ToolSpec], messages: Sequence[Message], action: Action) -> bool:
        return tool_match(action, self.truth(tools, messages), list(tools)).matched

    async def dialogues(
        self, count: int, *, mix: dict[str, float] | None = None, seed: str = ""
    ) -> list[WorldSample]:
        """Simulate ``count`` dialogues; every learnable step is one clean sample."""
        rng = random.Random(f"world-{self.seed}-dialogues-{seed}")
        out = []
        for _ in range(count):
            kind = choose_kind(mix or DEFAULT_MIX, rng)
            for sample in await dialogue_to_samples(self.roles, kind, rng):
                out.append(WorldSample(sample, self.truth(sample.tools, sample.messages), kind))
        return out

    async def samples(
        self,
        count: int,
        *,
        noise_rate: float = 0.0,
        noise_mix: dict[str, float] | None = None,
        mix: dict[str, float] | None = None,
        seed: str = "",
    ) -> list[WorldSample]:
        """The samples of ``count`` dialogues; a ``noise_rate`` share of all of them get a wrong label.

        Only call labels can be made wrong (a "no call" answer has no arguments to corrupt), so the
        noisy samples are drawn among those; the share is of all samples, as a dataset's noise rate is.
        """
        clean = await self.dialogues(count, mix=mix, seed=seed) if count else []
        rng = random.Random(f"world-{self.seed}-noise-{seed}")
        eligible = [index for index, item in enumerate(clean) if item.sample.label.calls]
        noisy_indices = set(rng.sample(eligible, min(len(eligible), round(noise_rate * len(clean)))))
        out = []
        for index, item in enumerate(clean):
            noisy = (
                add_noise(item.sample.label, item.sample.tools, noise_mix or DEFAULT_NOISE_MIX, rng)
                if index in noisy_indices
                else None
            )
            if noisy is None:
                out.append(item)
                continue
            label, kind = noisy
            out.append(
                WorldSample(item.sample.model_copy(update={"label": label}), item.truth, item.kind, kind)
            )
        return out
