"""Settings of the synthetic tool world (the ``[world]`` section)."""

from __future__ import annotations

from pydantic import Field

from common.settings import Section


class WorldSettings(Section):
    """The synthetic tool world for offline runs (demo, tests, efficacy benchmark).

    When set, and only for the roles with no LLM endpoint configured, the judge, the expansion
    generator and the verifier are *simulations* backed by the world's ground truth.
    """

    seed: int = 0
    seed_dialogues: int = Field(default=400, ge=1, description="Dialogues simulated for D_seed.")
    heldout_dialogues: int = Field(default=200, ge=0, description="Dialogues for the clean held-out set.")
    noise_rate: float = Field(default=0.2, ge=0, le=1, description="Share of call labels made wrong.")
    noise_mix: dict[str, float] | None = Field(default=None, description="Noise kinds and weights.")
    judge_error_rate: float = Field(default=0.1, ge=0, le=1)
    generator_defect_rate: float = Field(default=0.1, ge=0, le=1)
    verifier_error_rate: float = Field(default=0.05, ge=0, le=1)
