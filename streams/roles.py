"""The roles the stages ask: judge, generator, verifier. Their cases, one interface, one way to ask.

A role client answers a batch of cases with raw text, in the formats the paper's prompts ask for
(Figure 10 for the judge, ``INPUT:``/``OUTPUT:`` for the generator, ``CORRECT``/``INCORRECT`` for the
verifier); the stages parse it. Two kinds of client implement :class:`RoleClient`:

- :class:`LLMRole` subclasses: an LLM behind an inference backend (an OpenAI-compatible endpoint in
  production), one per role, differing only in how a case becomes a chat;
- the synthetic world's simulations (``world/simulation.py``), which import this module only.

:func:`ask_until_parsed` is the one loop for "ask until the answer parses": judge and verify both
use it; an answer that still does not parse after ``max_attempts`` comes back unparsed, so the stage
can account for it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import ClassVar, Generic, Protocol, TypeVar

from inference.base import Chat, InferenceBackend, InferenceError, SamplingConfig
from schemas.events import Scenario
from streams.stage import TransientError
from toolcall.specs import ToolSpec
from toolcall.types import Action, Message, Sample


@dataclass(frozen=True)
class JudgeCase:
    """What the judge sees: the tools, the dialogue, both responses, and which one is the label."""

    case_id: str  # the probe event id
    sample_id: str
    tools: list[ToolSpec]
    messages: list[Message]
    label: Action
    prediction: Action
    label_position: int  # 1 or 2


@dataclass(frozen=True)
class ExpansionRequest:
    """One of the k generation requests for an error seed, with its scenario constraint."""

    request_id: str
    seed_sample_id: str
    tools: list[ToolSpec]
    messages: list[Message]
    correct: Action
    wrong: Action | None
    error_analysis: str
    scenario: Scenario
    index: int


@dataclass(frozen=True)
class VerificationCase:
    """A candidate sample the verifier checks (after it passed the rule tier)."""

    candidate_id: str
    seed_sample_id: str
    sample: Sample


CaseT = TypeVar("CaseT")
CaseT_contra = TypeVar("CaseT_contra", contravariant=True)
ParsedT = TypeVar("ParsedT")


class RoleClient(Protocol[CaseT_contra]):
    """Answers cases with raw text. ``attempt`` counts from 1; later attempts re-ask unparsed answers."""

    model_name: str

    async def ask(self, cases: Sequence[CaseT_contra], attempt: int = 1) -> list[str]: ...


JudgeClient = RoleClient[JudgeCase]
Generator = RoleClient[ExpansionRequest]
Verifier = RoleClient[VerificationCase]


class LLMRole(ABC, Generic[CaseT]):
    """A role played by an LLM behind an inference backend: render each case as a chat, ask, return text.

    Subclasses say how a case becomes a chat (:meth:`render`) and how to sample (:meth:`sampling`).
    Endpoint failures become :class:`TransientError` (the stage pauses and retries the batch); a
    request the endpoint rejects for its content (a prompt over the context) fails that input only.
    """

    role: ClassVar[str]

    def __init__(self, backend: InferenceBackend, *, current_time: str, max_tokens: int):
        self.backend = backend
        self.current_time = current_time
        self.max_tokens = max_tokens

    @property
    def model_name(self) -> str:
        return self.backend.model_id

    @abstractmethod
    def render(self, case: CaseT) -> Chat:
        """The chat that asks the model about ``case``."""

    @abstractmethod
    def sampling(self, cases: Sequence[CaseT], attempt: int) -> SamplingConfig:
        """How to decode this batch on this attempt."""

    async def ask(self, cases: Sequence[CaseT], attempt: int = 1) -> list[str]:
        if not cases:
            return []
        chats = [self.render(case) for case in cases]
        try:
            generations = await self.backend.generate(chats, self.sampling(cases, attempt))
        except InferenceError as error:
            if error.input_fault:  # this input (e.g. a prompt too long for the context), not the endpoint
                raise ValueError(f"{self.role} endpoint rejected this input: {error}") from error
            raise TransientError(f"{self.role} endpoint unavailable: {error}") from error
        return [options[0].text for options in generations]


@dataclass(frozen=True)
class Asked(Generic[CaseT, ParsedT]):
    """A case, its last raw answer, what it parsed to (None: never parsed), and the attempts it took."""

    case: CaseT
    raw: str
    parsed: ParsedT | None
    attempts: int


async def ask_until_parsed(
    client: RoleClient[CaseT],
    cases: Sequence[CaseT],
    parse: Callable[[CaseT, str], ParsedT | None],
    max_attempts: int,
) -> list[Asked[CaseT, ParsedT]]:
    """Ask ``client`` about every case; ask again, up to ``max_attempts`` in all, while an answer does
    not parse. Results come back in the order of ``cases``."""
    results: dict[int, Asked[CaseT, ParsedT]] = {}
    pending = list(enumerate(cases))
    for attempt in range(1, max_attempts + 1):
        if not pending:
            break
        answers = await client.ask([case for _, case in pending], attempt)
        still_pending = []
        for (index, case), raw in zip(pending, answers, strict=True):
            parsed = parse(case, raw)
            if parsed is None and attempt < max_attempts:
                still_pending.append((index, case))
                continue
            results[index] = Asked(case, raw, parsed, attempt)
        pending = still_pending
    return [results[index] for index in range(len(cases))]
