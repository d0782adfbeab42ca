"""The roles the stages ask: judge, generator, verifier. Their cases, one interface, one way to ask.

A role client answers a batch of cases with text, in the formats the paper's prompts ask for
(Figure 10 for the judge, ``INPUT:``/``OUTPUT:`` for the generator, ``CORRECT``/``INCORRECT`` for the
verifier); the stages parse it. An answer is plain text, or an :class:`Answer` that also carries the
reasoning trace the server split off and whether the token budget cut it off. Two kinds of client
implement :class:`RoleClient`:

- :class:`LLMRole` subclasses: an LLM behind an inference backend (an OpenAI-compatible endpoint in
  production), one per role, differing only in how a case becomes a chat;
- the synthetic world's simulations (``world/simulation.py``), which import this module only.

What every LLM role does the same way lives here, once: how to sample (:class:`RoleSampling`: the
budget, greedy or sampled, and a hotter, newly seeded retry, since a greedy re-ask returns the same
answer), the reasoning trace (vLLM's ``reasoning_content``, or inline ``<think>``, passed on to the
readers), and an answer cut off by its budget (``finish_reason == "length"``), which is asked once
more with a larger budget and, cut off again, comes back marked ``truncated`` for the stage to
dead-letter.

:func:`ask_until_parsed` is the one loop for "ask until the answer parses": judge and verify both
use it; an answer that still does not parse after ``max_attempts`` comes back unparsed, so the stage
can account for it. A truncated answer is final: its budget retry already happened.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Generic, Literal, Protocol, TypeVar

from common.logs import get_logger
from common.seeding import seeded_rng
from inference.base import Chat, Generation, InferenceBackend, InferenceError, SamplingConfig
from schemas.events import DeadLetter, Event, Producer, Scenario, derived_event_id, make_event
from streams.stage import TransientError, backend_failure
from toolcall.specs import ToolSpec
from toolcall.types import Action, Message, Sample

log = get_logger(__name__)

# --- the cases --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class JudgeCase:
    """What the judge sees: the tools, the dialogue, both responses, and which one is the label.

    ``label_facts`` and ``prediction_facts`` are what the schema rules found wrong with each side
    (shown to the judge as checked facts about the response, never as a decision), and
    ``conversation_time`` is the time of the conversation (None: the configured default).
    """

    case_id: str  # the probe event id
    sample_id: str
    tools: list[ToolSpec]
    messages: list[Message]
    label: Action
    prediction: Action
    label_position: int  # 1 or 2
    label_facts: tuple[str, ...] = ()
    prediction_facts: tuple[str, ...] = ()
    conversation_time: str | None = None

    @property
    def key(self) -> str:
        return f"{self.case_id}:{self.label_position}"


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
    conversation_time: str | None = None
    wrong_unparsed: str = ""  # the model's raw output when it did not parse as a call (wrong is None)

    @property
    def key(self) -> str:
        return self.request_id


@dataclass(frozen=True)
class VerificationCase:
    """A candidate sample the verifier checks (after it passed the rule tier)."""

    candidate_id: str
    seed_sample_id: str
    sample: Sample

    @property
    def key(self) -> str:
        return self.candidate_id


# --- answers ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Answer:
    """One answer of a role: its text, the reasoning trace the server split off, and how it ended.

    ``truncated``: the token budget cut it off, also on its retry with the larger budget
    (``max_tokens`` is the budget of the last ask). ``trace_opened``: the chat template opened the
    reasoning trace, so ``text`` begins inside it.
    """

    text: str
    reasoning: str | None = None
    truncated: bool = False
    max_tokens: int | None = None
    budget_retried: bool = False
    trace_opened: bool = False

    def settles(self, *, from_statements: bool, reconsidered: bool = False) -> bool:
        """Whether a reading of this answer may be used. A cut-off answer only when its decision was
        stated outright (a decision line) and not taken up again: one read from the claims of its
        sentences came from a line of reasoning the budget cut, which may still have turned ("…so
        let me reconsider"), and so may a decision the answer began to reconsider ("Wait, …")."""
        return not (self.truncated and (from_statements or reconsidered))

    def truncation_reason(self) -> str:
        budgets = f"{self.max_tokens} tokens" if self.max_tokens else "its token budget"
        again = " on its retry with a larger budget too" if self.budget_retried else ""
        return f"truncated: the answer was cut off at {budgets}{again}"


def answer_of(value: str | Answer) -> Answer:
    """Plain text (a simulation's answer) as an :class:`Answer`."""
    return value if isinstance(value, Answer) else Answer(text=value)


TRUNCATED = "TruncatedAnswer"  # the DeadLetter error type of an answer cut off by its token budget
KEPT_ANSWERS = 4096  # answers kept for a failed batch's one-by-one retry (oldest dropped first)


CaseT = TypeVar("CaseT")
CaseT_contra = TypeVar("CaseT_contra", contravariant=True)
ParsedT = TypeVar("ParsedT")


class RoleClient(Protocol[CaseT_contra]):
    """Answers cases with text (or :class:`Answer`). ``attempt`` counts from 1; later attempts re-ask
    unparsed answers."""

    model_name: str

    async def ask(self, cases: Sequence[CaseT_contra], attempt: int = 1) -> Sequence[str | Answer]: ...


JudgeClient = RoleClient[JudgeCase]
Generator = RoleClient[ExpansionRequest]
Verifier = RoleClient[VerificationCase]


@dataclass(frozen=True)
class JudgePanel:
    """The judges and how their votes combine (``[judge]`` with ``[[judge.panel]]``).

    ``quorum``: votes the verdict needs (None: a majority of the panel); ``no_quorum``: what happens
    to a sample without one (``drop`` it, or ``defer`` it to a later round); ``two_order``: ask each
    judge with the label shown first and second, and count only a judge whose two answers agree.
    """

    judges: Sequence[JudgeClient]
    quorum: int | None = None
    no_quorum: Literal["drop", "defer"] = "drop"
    two_order: bool = False

    def required_votes(self) -> int:
        return self.quorum or len(self.judges) // 2 + 1


# --- LLM roles --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RoleSampling:
    """How an LLM role samples: see ``RoleSettings`` in ``streams/config.py`` for each field."""

    max_tokens: int = 4096
    temperature: float = 0.0
    top_p: float = 1.0
    retry_temperature: float = 0.7
    truncated_retry_max_tokens: int | None = None
    template_opens_trace: bool = False

    @classmethod
    def from_settings(cls, role: Any) -> RoleSampling:
        """From a ``streams.config.RoleSettings`` (any object with those attributes)."""
        return cls(
            max_tokens=role.max_tokens,
            temperature=role.temperature,
            top_p=role.top_p,
            retry_temperature=role.retry_temperature,
            truncated_retry_max_tokens=role.truncated_retry_max_tokens,
            template_opens_trace=role.template_opens_trace,
        )

    def retry_budget(self) -> int:
        return self.truncated_retry_max_tokens or 2 * self.max_tokens

    def temperature_of(self, attempt: int) -> float:
        """The first ask at the role's temperature; re-asks at least at ``retry_temperature``."""
        return self.temperature if attempt <= 1 else max(self.temperature, self.retry_temperature)


class LLMRole(ABC, Generic[CaseT]):
    """A role played by an LLM behind an inference backend: render each case as a chat, ask, answer.

    Subclasses say how a case becomes a chat (:meth:`render`) and may offer a grammar for the answer
    (``answer_regex``), which ``constrain`` turns on. Each case is its own request (as an endpoint
    takes them), sampled with its own seed, so its answer does not depend on the batch it came in.
    Endpoint failures become :class:`TransientError` (the stage pauses and retries the batch); a request
    the endpoint rejects for its content (a prompt over the context) fails that input only: the batch
    fails, and the answers its other cases got are kept for the stage's one-by-one retry, which then
    asks only the culprit again.
    """

    role: ClassVar[str]
    default_sampling: ClassVar[RoleSampling] = RoleSampling()
    answer_regex: ClassVar[str | None] = None  # the grammar ``constrain`` holds the answer to

    def __init__(
        self,
        backend: InferenceBackend,
        *,
        current_time: str,
        sampling: RoleSampling | None = None,
        constrain: bool = False,
    ):
        if constrain and self.answer_regex is None:
            raise ValueError(f"the {self.role} role has no answer grammar to constrain its output to")
        self.backend = backend
        self.current_time = current_time
        self.settings = sampling or self.default_sampling
        self.regex = self.answer_regex if constrain else None
        # Answers of a batch that failed for one input's fault, by (case, attempt): the stage retries
        # the batch's inputs one by one and gets them from here instead of asking again.
        self._kept: collections.OrderedDict[tuple[str, int], Answer] = collections.OrderedDict()

    @property
    def model_name(self) -> str:
        return self.backend.model_id

    @property
    def max_tokens(self) -> int:
        return self.settings.max_tokens

    def time_of(self, conversation_time: str | None) -> str:
        """The conversation's own time, else the configured default."""
        return conversation_time or self.current_time

    @abstractmethod
    def render(self, case: CaseT) -> Chat:
        """The chat that asks the model about ``case``."""

    def sampling(self, case: CaseT, attempt: int, max_tokens: int | None = None) -> SamplingConfig:
        """How to decode this case on this attempt: greedy at temperature 0, else seeded by the case
        and the attempt (a run is reproducible; a re-ask draws anew)."""
        temperature = self.settings.temperature_of(attempt)
        seed = None
        if temperature > 0:
            seed = seeded_rng(self.role, _key_of(case), str(attempt)).randrange(2**31)
        return SamplingConfig(
            greedy=temperature == 0,
            temperature=temperature,
            top_p=self.settings.top_p,
            max_tokens=max_tokens or self.settings.max_tokens,
            seed=seed,
            regex=self.regex,
        )

    async def _generate(self, chat: Chat, sampling: SamplingConfig) -> Generation:
        try:
            [options] = await self.backend.generate([chat], sampling)
        except InferenceError as error:
            raise backend_failure(error, f"{self.role} endpoint") from error
        return options[0]

    def _answer(self, generation: Generation, max_tokens: int, budget_retried: bool) -> Answer:
        return Answer(
            text=generation.text,
            reasoning=generation.reasoning,
            truncated=generation.finish_reason == "length",
            max_tokens=max_tokens,
            budget_retried=budget_retried,
            trace_opened=self.settings.template_opens_trace,
        )

    async def _with_larger_budget(self, chat: Chat, sampling: SamplingConfig, first: Answer) -> Answer:
        budget = max(self.settings.retry_budget(), sampling.max_tokens)
        try:
            generation = await self._generate(chat, dataclasses.replace(sampling, max_tokens=budget))
        except ValueError:  # the larger budget does not fit the context: the first answer stays cut off
            return dataclasses.replace(first, budget_retried=True)
        except TransientError as error:
            refused = error.__cause__
            if not (isinstance(refused, InferenceError) and not refused.retryable):
                raise
            # The endpoint refuses the larger budget itself (it alone fills the model's context): the
            # first answer stays cut off rather than the stage pausing over a retry.
            log.warning("role.retry_budget_refused", role=self.role, budget=budget, error=str(refused)[:300])
            return dataclasses.replace(first, budget_retried=True)
        return self._answer(generation, budget, budget_retried=True)

    async def ask(self, cases: Sequence[CaseT], attempt: int = 1) -> list[Answer]:
        if not cases:
            return []
        outcomes = await asyncio.gather(
            *(self._ask_one(case, attempt) for case in cases), return_exceptions=True
        )
        failures = [outcome for outcome in outcomes if isinstance(outcome, BaseException)]
        if not failures:
            return outcomes  # type: ignore[return-value]
        for failure in failures:  # an unavailable endpoint pauses the stage, whatever else failed
            if not isinstance(failure, ValueError):
                raise failure
        if len(cases) > 1:  # the stage retries the inputs one by one: keep what was answered
            for case, outcome in zip(cases, outcomes, strict=True):
                if isinstance(outcome, Answer):
                    self._keep((_key_of(case), attempt), outcome)
        raise failures[0]

    def _keep(self, key: tuple[str, int], answer: Answer) -> None:
        self._kept[key] = answer
        while len(self._kept) > KEPT_ANSWERS:
            self._kept.popitem(last=False)

    async def _ask_one(self, case: CaseT, attempt: int) -> Answer:
        kept = self._kept.pop((_key_of(case), attempt), None)
        if kept is not None:
            return kept
        chat = self.render(case)
        sampling = self.sampling(case, attempt)
        answer = self._answer(await self._generate(chat, sampling), sampling.max_tokens, budget_retried=False)
        if answer.truncated:
            answer = await self._with_larger_budget(chat, sampling, answer)
        return answer


def _key_of(case: Any) -> str:
    return str(getattr(case, "key", case))


# --- asking until an answer parses ---------------------------------------------------------------------


@dataclass(frozen=True)
class Asked(Generic[CaseT, ParsedT]):
    """A case, its last answer, what it parsed to (None: never parsed), and the attempts it took."""

    case: CaseT
    answer: Answer
    parsed: ParsedT | None
    attempts: int

    @property
    def raw(self) -> str:
        return self.answer.text

    @property
    def truncated(self) -> bool:
        """Cut off by its budget (twice) and unread: the stage dead-letters it as truncated."""
        return self.parsed is None and self.answer.truncated


async def ask_until_parsed(
    client: RoleClient[CaseT],
    cases: Sequence[CaseT],
    parse: Callable[[CaseT, Answer], ParsedT | None],
    max_attempts: int,
) -> list[Asked[CaseT, ParsedT]]:
    """Ask ``client`` about every case; ask again, up to ``max_attempts`` in all, while an answer does
    not parse (a truncated one is not asked again). Results come back in the order of ``cases``."""
    results: dict[int, Asked[CaseT, ParsedT]] = {}
    pending = list(enumerate(cases))
    for attempt in range(1, max_attempts + 1):
        if not pending:
            break
        answers = await client.ask([case for _, case in pending], attempt)
        still_pending = []
        for (index, case), value in zip(pending, answers, strict=True):
            answer = answer_of(value)
            parsed = parse(case, answer)
            if parsed is None and not answer.truncated and attempt < max_attempts:
                still_pending.append((index, case))
                continue
            results[index] = Asked(case, answer, parsed, attempt)
        pending = still_pending
    return [results[index] for index in range(len(cases))]


def truncation_letter(
    answer: Answer,
    *,
    stage: str,
    producer: Producer,
    source_ref: str,
    key: str,
    parent_id: str,
    checkpoint_id: str | None,
    run_id: str,
    discriminator: str = "",
    who: str = "",
) -> Event[DeadLetter]:
    """The DeadLetter of an answer its token budget cut off on its retry too (``TruncatedAnswer``),
    derived from ``parent_id`` (the stage's event about the case), so a redelivery repeats its id.
    ``raw`` keeps the cut-off text (the reasoning trace when no answer text came at all)."""
    text = answer.text if answer.text.strip() else (answer.reasoning or "")
    return make_event(
        DeadLetter(
            stage=stage,
            reason=answer.truncation_reason() + (f" ({who})" if who else ""),
            error_type=TRUNCATED,
            source_ref=source_ref,
            key=key.encode("utf-8"),
            raw=text.encode("utf-8"),
        ),
        run_id=run_id,
        producer=producer,
        event_id=derived_event_id([parent_id], stage, f"truncated:{discriminator}"),
        parent_ids=[parent_id],
        checkpoint_id=checkpoint_id,
    )
