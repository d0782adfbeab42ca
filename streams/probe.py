"""probe: Greedy Capability Probing (Section 4.2) of each round's dataset under its checkpoint.

For every member of D_j (a CuratedSample) the policy trained on D_j greedily decodes the Figure 7
prompt; the output is parsed, compared with the label by ToolMatch, and its perplexity (Eq. 3) is
computed from the decode's own token log-probs. One ProbeResult per member and round, always under
exactly one checkpoint.

Which checkpoint: every probe worker follows the checkpoints topic. In ``final`` mode (the paper)
D_j waits for the round's final checkpoint. In ``latest`` mode (the online variant) probing starts
with the first checkpoint of round j the trainer publishes and each batch uses the newest one
available, so data evolution overlaps training.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any, Literal

from common.logs import get_logger
from inference.base import InferenceBackend, InferenceError, SamplingConfig
from schemas.events import (
    CheckpointPublished,
    CuratedSample,
    Event,
    MatchDiff,
    ProbeResult,
    derived_event_id,
    make_event,
)
from streams.registry import EventLog, StageClients, StageSettings, register
from streams.stage import LogFollower, PublishedIds, Stage, TransientError, backend_failure
from toolcall.match import counts_as_match, tool_match
from toolcall.parsing import parse_output
from toolcall.perplexity import perplexity
from toolcall.prompts import build_chat

log = get_logger(__name__)
# "promoted": the policy the promotion gate promoted after round j's final checkpoint was decided
# (streams.promote.PromotedCheckpointWatcher serves that mode).
ProbeMode = Literal["final", "latest", "promoted"]


async def switch_policy(backend: InferenceBackend, checkpoint: CheckpointPublished) -> None:
    """Switch the policy's backend to ``checkpoint`` (the probe's and the evaluate stage's way).

    A failure is never the input's fault: an endpoint that does not serve the checkpoint yet, a folder
    not visible yet on shared storage, or one deleted or cut short. Dead-lettering the input would
    lose it (the probe's round would close with no probes; the evaluate stage's checkpoint would never
    reach the promotion gate); so the stage pauses and asks again, naming the checkpoint, until it loads.
    """
    try:
        await backend.load(checkpoint.uri, checkpoint.new_checkpoint_id)
    except InferenceError as error:
        raise TransientError(
            f"the policy cannot switch to checkpoint {checkpoint.new_checkpoint_id}: {error}"
        ) from error


class CheckpointWatcher(LogFollower):
    """Follows the checkpoints topic from offset 0; answers "which checkpoint probes round j".

    ``log`` None: nothing is followed, the owner publishes checkpoints itself (in-process runs).
    """

    topics: tuple[str, ...] = ("checkpoints",)

    def __init__(self, log: EventLog | None, run_id: str):
        super().__init__(log)
        self.run_id = run_id
        self.by_round: dict[int, list[Event[CheckpointPublished]]] = {}
        self._changed = asyncio.Condition()

    async def take(self, batch: Sequence[Event[Any]]) -> None:
        for event in batch:
            await self.publish(event)

    async def publish(self, event: Event[Any]) -> None:
        """Record a checkpoint event (the follower calls this; tests may too)."""
        if not isinstance(event.payload, CheckpointPublished):
            return
        async with self._changed:
            known = self.by_round.setdefault(event.payload.round, [])
            if all(e.event_id != event.event_id for e in known):
                # Kept in the order published: the checkpoints topic has one partition, so the last is
                # the newest attempt's highest step (a retrained round's checkpoints come later), and
                # a dead attempt's never wins. Never by produced_at: a trainer's clock that stepped
                # back (NTP, another machine) would make the dead attempt look newer.
                known.append(event)
            self._changed.notify_all()

    def current(self, round_: int, mode: ProbeMode) -> Event[CheckpointPublished] | None:
        if mode == "promoted":
            raise ValueError("probe mode 'promoted' needs streams.promote.PromotedCheckpointWatcher")
        known = self.by_round.get(round_, [])
        if mode == "final":
            return next((e for e in known if e.payload.final), None)
        return known[-1] if known else None

    async def wait_for(self, round_: int, mode: ProbeMode) -> Event[CheckpointPublished]:
        async with self._changed:
            await self._changed.wait_for(lambda: self.current(round_, mode) is not None)
            checkpoint = self.current(round_, mode)
            assert checkpoint is not None
            return checkpoint


TRUNCATED_OUTPUT = "cut off at the token budget (max_new_tokens) before the answer ended"


def probe_result(
    member: Event[CuratedSample],
    checkpoint: Event[CheckpointPublished],
    raw_output: str,
    token_logprobs: Sequence[float],
    *,
    high_ppl_threshold: float | None,
    truncated: bool = False,
    trace_opened: bool = False,
) -> Event[ProbeResult]:
    """The pure part of probing: parse, match, perplexity, and the event's identity and lineage.

    ``truncated``: the token budget cut the output off. Calls that match stand (the label's calls were
    all written). Anything else is no prediction and no match: a set of parallel calls may be missing
    its end, a text answer (or a reasoning trace read as one) is unfinished, and either would match a
    clarification label or, judged LABEL_WRONG, become the sample's new label. The reason says it was
    cut off first, as that is what to fix (``max_new_tokens``), whatever the cut made of the text.
    ``trace_opened``: the prompt ended inside a reasoning trace its chat template opened
    (:attr:`inference.base.Generation.trace_opened`): the output's answer starts after ``</think>``,
    and one without it never answered (calls drafted in the trace are no prediction).
    """
    sample = member.payload
    parsed = parse_output(raw_output, sample.tools, trace_opened=trace_opened)
    prediction = parsed.action if parsed.error is None else None
    parse_error = parsed.error
    if prediction is not None:
        match = tool_match(prediction, sample.label, sample.tools)
        matched = match.matched
        diffs = [MatchDiff(kind=d.kind, path=d.path, detail=_diff_detail(d)) for d in match.diffs]
    else:
        matched = False
    if truncated and not counts_as_match(prediction, matched, truncated=True):
        matched, prediction = False, None
        parse_error = f"{TRUNCATED_OUTPUT}: {parse_error}" if parse_error else TRUNCATED_OUTPUT
    if prediction is None:
        diffs = [MatchDiff(kind="unparseable_output", detail={"error": parse_error or "no output"})]
    ppl = perplexity(token_logprobs) if token_logprobs else None
    return make_event(
        ProbeResult(
            sample_id=sample.sample_id,
            round=sample.round,
            label_event_id=sample.label_event_id,
            tools=sample.tools,
            messages=sample.messages,
            label=sample.label,
            raw_output=raw_output,
            prediction=prediction,
            parse_error=parse_error,
            matched=matched,
            diffs=diffs,
            ppl=ppl,
            num_tokens=len(token_logprobs),
            high_ppl=bool(
                matched and ppl is not None and high_ppl_threshold is not None and ppl >= high_ppl_threshold
            ),
            conversation_time=sample.conversation_time,
        ),
        run_id=member.run_id,
        producer=ProbeStage.producer_info(),
        # Identity: "the probe of this member of D_j" -- whichever checkpoint answered it.
        event_id=probe_event_id(member),
        parent_ids=[member.event_id, checkpoint.event_id],
        checkpoint_id=checkpoint.payload.new_checkpoint_id,
    )


def probe_event_id(member: Event[CuratedSample]) -> str:
    """The id of a member's ProbeResult: one probe per member of D_j."""
    return derived_event_id([member.event_id], "probe")


def _diff_detail(diff: Any) -> dict[str, Any]:
    data = diff.model_dump(mode="json") if hasattr(diff, "model_dump") else dict(diff.to_dict())
    data.pop("kind", None)
    data.pop("path", None)
    return data


@register()
class ProbeStage(Stage):
    """GCP: greedy decoding with the round's checkpoint, ToolMatch against the label, perplexity."""

    name = "probe"
    input_topics = ("curated",)
    input_types = ("CuratedSample",)

    def __init__(
        self,
        run_id: str,
        backend: InferenceBackend,
        watcher: CheckpointWatcher,
        *,
        mode: ProbeMode = "final",
        current_time: str = "2026-01-01 09:00:00",
        max_new_tokens: int = 256,
        high_ppl_threshold: float | None = None,
        batch_size: int = 16,
        published: PublishedIds | None = None,
    ):
        super().__init__(run_id)
        self.backend = backend
        self.watcher = watcher
        # The probes already on the log. Where the checkpoint is chosen when the batch is decoded
        # (``latest``, ``promoted``), a member redelivered after a crash would otherwise be probed
        # again by a newer checkpoint and published under the same id with other content.
        self.published = published or PublishedIds(None, ())
        self.mode = mode
        self.current_time = current_time
        self.max_new_tokens = max_new_tokens
        self.high_ppl_threshold = high_ppl_threshold
        self.batch_size = batch_size
        self._loaded: str | None = None

    @classmethod
    def from_settings(cls, settings: StageSettings, clients: StageClients) -> ProbeStage:
        loop, policy = settings.loop, settings.policy
        watcher_class = CheckpointWatcher
        if loop.probe_checkpoints == "promoted":
            from streams.promote import PromotedCheckpointWatcher

            watcher_class = PromotedCheckpointWatcher
        return cls(
            settings.run_id,
            clients.policy_backend(),
            watcher_class(clients.event_log(), settings.run_id),
            mode=loop.probe_checkpoints,
            current_time=loop.current_time,
            max_new_tokens=policy.max_new_tokens,
            high_ppl_threshold=loop.hppl_threshold,
            batch_size=policy.batch_size,
            # Only where the checkpoint is chosen at decode time can a redelivery change a probe.
            published=PublishedIds(clients.event_log(), ("probes",))
            if loop.probe_checkpoints != "final"
            else None,
        )

    @classmethod
    def producer_info(cls) -> Any:
        from schemas.events import Producer

        return Producer(stage=cls.name, version=cls.version)

    async def start(self) -> None:
        await self.watcher.start()
        await self.published.start()

    async def close(self) -> None:
        try:
            await self.published.close()
        finally:
            await self.watcher.close()

    async def _use(self, checkpoint: Event[CheckpointPublished]) -> None:
        if self._loaded != checkpoint.payload.new_checkpoint_id:
            log.info(
                "probe.load_checkpoint",
                checkpoint=checkpoint.payload.new_checkpoint_id,
                uri=checkpoint.payload.uri,
            )
            await switch_policy(self.backend, checkpoint.payload)
            self._loaded = checkpoint.payload.new_checkpoint_id

    async def handle(self, events: Sequence[Event[Any]]) -> list[Event[Any]]:
        outputs: list[Event[Any]] = []
        by_round: dict[int, list[Event[CuratedSample]]] = {}
        # A member whose probe is already on the topic (redelivered after a crash) is not probed
        # again: a newer checkpoint would give the same id other content. Where the checkpoint is
        # chosen now, those published before a restart are known first: the newest probes the rest.
        if self.mode != "final":
            await self.watcher.caught_up()
        await self.published.caught_up()
        events = [e for e in events if probe_event_id(e) not in self.published.ids]
        for event in events:
            by_round.setdefault(event.payload.round, []).append(event)
        for round_, members in sorted(by_round.items()):
            # Blocks until the trainer published a checkpoint for this round; faust pauses fetching.
            checkpoint = await self.watcher.wait_for(round_, self.mode)
            await self._use(checkpoint)
            chats = [
                build_chat(
                    m.payload.tools, m.payload.messages, m.payload.conversation_time or self.current_time
                )
                for m in members
            ]
            try:
                generations = await self.backend.generate(
                    chats, SamplingConfig(greedy=True, max_tokens=self.max_new_tokens)
                )
            except InferenceError as error:  # a served policy's outage pauses; one refused prompt does not
                raise backend_failure(error, "the policy") from error
            for member, (generation, *_) in zip(members, generations, strict=True):
                outputs.append(
                    probe_result(
                        member,
                        checkpoint,
                        generation.text,
                        generation.token_logprobs,
                        high_ppl_threshold=self.high_ppl_threshold,
                        truncated=generation.finish_reason == "length",
                        trace_opened=generation.trace_opened,
                    )
                )
        return outputs
