"""Bad input at stage level: hostile events and model answers never sink a stage or a partition.

The parsers' own "never raises" properties live in tests/toolcall; here the unit is a whole stage
(``Stage.process`` with scripted clients answering random text), ingest over mutated records of
every format, and the Kafka consumers (a ``GroupConsumer`` and a faust ``StageRunner``) reading a
partition with poison records between good ones. The properties:

- nothing but :class:`TransientError` leaves ``Stage.process``;
- every input a stage must answer gets an output or a DeadLetter naming it (nothing is lost);
- every output can be published (the Avro codec encodes and decodes it);
- a poison record is dead-lettered with its reason and the records behind it are still processed.
"""

from __future__ import annotations

import asyncio
import json
import random
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bus.kafka import EventProducer, GroupConsumer, ensure_topics, replay
from bus.topics import topic_name
from inference.base import Generation, InferenceError, SamplingConfig
from looptool.config import Settings
from schemas.codec import default_codec
from schemas.events import (
    CheckpointPublished,
    DeadLetter,
    Event,
    LabelCorrected,
    Producer,
    SampleAdded,
    Scenario,
    Verdict,
    make_event,
)
from streams.expand import ExpandStage, candidate_event, expansion_requests
from streams.ingest import IngestReport, read_records
from streams.judge import JudgeStage, LLMJudge
from streams.probe import CheckpointWatcher, ProbeStage, probe_result
from streams.relabel import RelabelStage, correction_for
from streams.roles import ExpansionRequest, JudgeCase, VerificationCase
from streams.stage import Stage, TransientError
from streams.verify import VerifyStage
from tests.foundation.events_factory import CONTEXT, FLUCTUATION, LABEL, PREDICTION, event_of
from tests.reliability import strategies as hs
from tests.streams.test_stage_logic import checkpoint, member, probe_event, verdict_event

EXAMPLES = Path(__file__).parents[2] / "examples" / "seeds"
CODEC = default_codec()
FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _cycle(answers: Sequence[str]) -> Callable[[], str]:
    state = {"next": 0}

    def take() -> str:
        answer = answers[state["next"] % len(answers)]
        state["next"] += 1
        return answer

    return take


class RandomPolicy:
    """A policy backend that answers whatever the test drew."""

    name = "scripted"
    model_id = "scripted"

    def __init__(self, outputs: Sequence[str], logprobs: Sequence[float]):
        self.take = _cycle(outputs)
        self.logprobs = list(logprobs)

    async def load(self, model_path: str, model_id: str) -> None:
        self.model_id = model_id

    async def generate(self, prompts: Sequence[Any], sampling: SamplingConfig) -> list[list[Generation]]:
        return [[Generation(text=self.take(), token_logprobs=self.logprobs)] for _ in prompts]


class RandomJudge:
    model_name = "scripted-judge"

    def __init__(self, answers: Sequence[str]):
        self.take = _cycle(answers)

    async def ask(self, cases: Sequence[JudgeCase], attempt: int = 1) -> list[str]:
        return [self.take() for _ in cases]


class RandomGenerator:
    model_name = "scripted-generator"

    def __init__(self, answers: Sequence[str]):
        self.take = _cycle(answers)

    async def ask(self, requests: Sequence[ExpansionRequest], attempt: int = 1) -> list[str]:
        return [self.take() for _ in requests]


class RandomVerifier:
    model_name = "scripted-verifier"

    def __init__(self, answers: Sequence[str]):
        self.take = _cycle(answers)

    async def ask(self, cases: Sequence[VerificationCase], attempt: int = 1) -> list[str]:
        return [self.take() for _ in cases]


async def _watcher_with_checkpoints() -> CheckpointWatcher:
    watcher = CheckpointWatcher(None, hs.RUN)
    for round_ in (1, 2, 3):
        await watcher.publish(
            make_event(
                CheckpointPublished(
                    new_checkpoint_id=f"ckpt-{round_}",
                    round=round_,
                    step=1,
                    final=True,
                    uri="/x",
                    backend="t",
                ),
                run_id=hs.RUN,
                producer=hs.PRODUCER,
            )
        )
    return watcher


def _check_stage_outputs(
    inputs: Sequence[Event[Any]], outputs: Sequence[Event[Any]], must_answer: Callable[[Event[Any]], bool]
) -> None:
    """Nothing lost (an output or a DeadLetter per input that needs one) and everything publishable."""
    for output in outputs:
        decoded = CODEC.decode(CODEC.encode(output))
        assert decoded.event_id == output.event_id and decoded.event_type == output.event_type
    for event in inputs:
        if must_answer(event):
            assert any(event.event_id in output.parent_ids for output in outputs), (
                f"input {event.event_type} {event.event_id} got neither an output nor a DeadLetter"
            )
    for letter in (o for o in outputs if isinstance(o.payload, DeadLetter)):
        assert letter.payload.reason and isinstance(letter.payload.raw, bytes)  # why, and what to inspect


def _run(stage: Stage, events: Sequence[Event[Any]]) -> list[Event[Any]]:
    return asyncio.run(stage.process(events))


# --- every stage on hostile events with random model answers -----------------------------------------


@FUZZ
@given(
    st.lists(hs.curated_events, min_size=1, max_size=4),
    st.lists(hs.model_outputs, min_size=1, max_size=4),
    st.lists(st.floats(min_value=-50, max_value=0), max_size=5),
)
def test_probe_stage_on_hostile_members(events: list[Any], outputs: list[str], logprobs: list[float]) -> None:
    async def scenario() -> list[Event[Any]]:
        stage = ProbeStage(hs.RUN, RandomPolicy(outputs, logprobs), await _watcher_with_checkpoints())  # type: ignore[arg-type]
        return await stage.process(events)

    _check_stage_outputs(events, asyncio.run(scenario()), lambda e: True)


@FUZZ
@given(st.lists(hs.probe_events, min_size=1, max_size=5), st.lists(hs.judge_answers, min_size=1, max_size=5))
def test_judge_stage_on_hostile_probes(events: list[Any], answers: list[str]) -> None:
    outputs = _run(JudgeStage(hs.RUN, RandomJudge(answers), max_attempts=2), events)
    _check_stage_outputs(events, outputs, lambda e: not e.payload.matched)
    for verdict in (o for o in outputs if isinstance(o.payload, Verdict)):
        assert verdict.payload.decided_by in ("rules", "judge")


@FUZZ
@given(st.lists(hs.verdict_events, min_size=1, max_size=6))
def test_relabel_stage_on_hostile_verdicts(events: list[Any]) -> None:
    outputs = _run(RelabelStage(hs.RUN), events)
    _check_stage_outputs(
        events, outputs, lambda e: e.payload.verdict == "LABEL_WRONG" and e.payload.prediction is not None
    )
    # Only LABEL_WRONG verdicts relabel anything.
    labelled = {o.parent_ids[0] for o in outputs if isinstance(o.payload, LabelCorrected)}
    assert labelled <= {e.event_id for e in events if e.payload.verdict == "LABEL_WRONG"}


SCENARIOS = [Scenario(focus=f"focus {i}", parameters=f"parameters {i}") for i in range(3)]


def _is_error_seed(event: Event[Any]) -> bool:
    v = event.payload
    return v.verdict == "PRED_WRONG" or (v.verdict == "LABEL_WRONG" and v.prediction is not None)


@FUZZ
@given(
    st.lists(hs.verdict_events, min_size=1, max_size=4),
    st.lists(hs.generator_answers, min_size=1, max_size=6),
)
def test_expand_stage_on_hostile_verdicts(events: list[Any], answers: list[str]) -> None:
    outputs = _run(ExpandStage(hs.RUN, RandomGenerator(answers), SCENARIOS, k=2), events)
    _check_stage_outputs(events, outputs, _is_error_seed)


@FUZZ
@given(
    st.lists(hs.candidate_events, min_size=1, max_size=5),
    st.lists(hs.verifier_answers, min_size=1, max_size=5),
)
def test_verify_stage_on_hostile_candidates(events: list[Any], answers: list[str]) -> None:
    outputs = _run(VerifyStage(hs.RUN, RandomVerifier(answers), max_attempts=2), events)
    _check_stage_outputs(events, outputs, lambda e: True)
    accepted = [o for o in outputs if isinstance(o.payload, SampleAdded)]
    for sample in accepted:  # an accepted expansion passed the rule tier: its label is schema-valid
        from toolcall.rules import validate_action

        assert validate_action(sample.payload.label, sample.payload.tools) == []


class BrittleJudge:
    """A judge client with a bug that some inputs trigger (it raises on them, batch or not)."""

    model_name = "brittle"

    def __init__(self, poison: set[str]):
        self.poison = poison

    async def ask(self, cases: Sequence[JudgeCase], attempt: int = 1) -> list[str]:
        if any(case.case_id in self.poison for case in cases):
            raise KeyError("client bug on this input")
        return ["BOTH_CORRECT\nError Analysis: none"] * len(cases)


@FUZZ
@given(st.lists(hs.probe_events, min_size=1, max_size=6), st.data())
def test_poison_inputs_are_isolated_and_the_rest_judged(events: list[Any], data: st.DataObject) -> None:
    poison = {e.event_id for e in events if data.draw(st.booleans())}
    outputs = _run(JudgeStage(hs.RUN, BrittleJudge(poison)), events)
    _check_stage_outputs(events, outputs, lambda e: not e.payload.matched)
    letters = {o.payload.source_ref for o in outputs if isinstance(o.payload, DeadLetter)}
    verdicts = {o.payload.probe_event_id for o in outputs if isinstance(o.payload, Verdict)}
    for event in events:
        if event.payload.matched:
            continue
        # Every mismatch reaches the client (the rules decide nothing), so its bug touches every poison.
        if event.event_id in poison:
            assert event.event_id in letters and event.event_id not in verdicts
        else:
            assert event.event_id in verdicts and event.event_id not in letters


async def test_unavailable_endpoint_pauses_instead_of_dead_lettering() -> None:
    class Down:
        name, model_id = "openai", "judge"

        async def generate(self, prompts: Any, sampling: Any) -> Any:
            raise InferenceError("HTTP 503 after 4 tries", retryable=True)

    stage = JudgeStage(hs.RUN, LLMJudge(Down(), current_time="2026-01-01"))  # type: ignore[arg-type]
    probe = probe_event(PREDICTION)
    probe = probe.model_copy(update={"run_id": hs.RUN})
    with pytest.raises(TransientError):
        await stage.process([probe])
    assert probe.event_id not in stage.seen  # not marked done: the batch is retried later


# --- known gaps: each test names the fix it waits for ------------------------------------------------

NAN_CALL = '<tool_call>\n{"name": "get_exchange_fluctuation", "arguments": {"base": NaN}}\n</tool_call>'


def test_non_finite_numbers_in_model_output_stay_publishable() -> None:
    event = probe_result(member(), checkpoint(), NAN_CALL, [-0.1], high_ppl_threshold=None)
    CODEC.encode(event)


def test_non_finite_numbers_in_generator_output_stay_publishable() -> None:
    verdict = verdict_event("PRED_WRONG")
    request = expansion_requests(verdict, SCENARIOS, 1)[0]
    answer = "INPUT: USER: How did GBP move?\nOUTPUT: " + NAN_CALL
    CODEC.encode(candidate_event(verdict, request, answer, 1, "gen", Producer(stage="expand", version="1")))


def test_non_finite_numbers_in_seed_records_are_dead_lettered(tmp_path: Path) -> None:
    line = (EXAMPLES / "openai.jsonl").read_text(encoding="utf-8").splitlines()[0]
    poisoned = line.replace('\\"days\\": 1', '\\"days\\": NaN', 1)
    assert poisoned != line
    path = tmp_path / "nan.jsonl"
    path.write_text(poisoned + "\n" + line + "\n", encoding="utf-8")
    events = list(read_records(path, "r", "auto", IngestReport(path=str(path))))
    for event in events:
        CODEC.encode(event)
    [letter] = [e for e in events if isinstance(e.payload, DeadLetter)]
    assert letter.payload.source_ref == "nan.jsonl:1" and "not finite" in letter.payload.reason
    assert [e.payload.sample_id for e in events if isinstance(e.payload, SampleAdded)]  # line 2 landed


async def test_a_prompt_the_endpoint_rejects_is_dead_lettered_not_retried_forever() -> None:
    from inference.openai_backend import OpenAIBackend
    from tests.reliability.endpoint import Endpoint, serve

    huge = CONTEXT[0].model_copy(update={"content": "x" * 20_000})
    normal = probe_event(PREDICTION).model_copy(update={"run_id": hs.RUN})
    poison = event_of(normal.payload.model_copy(update={"messages": [huge], "sample_id": "s_huge"}), hs.RUN)
    async with serve(Endpoint(max_prompt_chars=10_000)) as endpoint:
        backend = OpenAIBackend(endpoint.base_url, "judge", max_retries=1, backoff_initial_s=0.01)
        try:
            stage = JudgeStage(hs.RUN, LLMJudge(backend, current_time="2026-01-01"))
            outputs = await stage.process([normal, poison])
        finally:
            await backend.close()
    assert endpoint.rejected_long >= 1
    letters = [o for o in outputs if isinstance(o.payload, DeadLetter)]
    assert [letter.payload.source_ref for letter in letters] == [poison.event_id]
    assert "400" in letters[0].payload.reason
    assert any(isinstance(o.payload, Verdict) and o.parent_ids == [normal.event_id] for o in outputs)


# --- ingest over mutated records of every format -------------------------------------------------------

RECORDS = [
    (path.stem, json.loads(line))
    for path in sorted(EXAMPLES.glob("*.jsonl"))
    for line in path.read_text(encoding="utf-8").splitlines()
    if line.strip()
]


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix]
    if isinstance(value, dict):
        for key, child in value.items():
            found.extend(_paths(child, (*prefix, key)))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            found.extend(_paths(child, (*prefix, index)))
    return found


def _mutate(record: Any, path: tuple[Any, ...], new: Any, delete: bool) -> Any:
    if not path:
        return new
    record = json.loads(json.dumps(record))
    parent = record
    for key in path[:-1]:
        parent = parent[key]
    if delete and isinstance(parent, dict):
        del parent[path[-1]]
    else:
        parent[path[-1]] = new
    return record


FREE_TEXT_KEYS = ("content", "description", "query")


def _text_leaves(value: Any) -> list[tuple[Any, ...]]:
    """Paths of the free-text fields (contents, descriptions, queries): what a sample's author writes."""
    return [
        path
        for path in _paths(value)
        if path and path[-1] in FREE_TEXT_KEYS and isinstance(_get(value, path), str)
    ]


def _get(value: Any, path: tuple[Any, ...]) -> Any:
    for key in path:
        value = value[key]
    return value


@st.composite
def mutated_lines(draw: st.DrawFn) -> bytes:
    kinds = ["texts", "texts", "structure", "structure", "string-json", "truncated", "bytes"]
    kind = draw(st.sampled_from(kinds))
    _, record = draw(st.sampled_from(RECORDS))
    if kind == "bytes":
        return draw(st.binary(max_size=60)).replace(b"\n", b" ")
    if kind == "texts":  # the record keeps its shape; names, descriptions and contents turn hostile
        for _ in range(draw(st.integers(min_value=1, max_value=4))):
            leaves = _text_leaves(record)
            if leaves:
                record = _mutate(record, draw(st.sampled_from(leaves)), draw(hs.hostile_text), False)
    for _ in range(draw(st.integers(min_value=1, max_value=3)) if kind != "texts" else 0):
        path = draw(st.sampled_from(_paths(record)))
        record = _mutate(record, path, draw(hs.json_values), draw(st.booleans()))
    if kind == "string-json" and isinstance(record, dict):  # xLAM keeps tools/answers as JSON strings
        key = draw(st.sampled_from(sorted(record) or ["x"]))
        record = {**record, key: json.dumps(draw(hs.json_values))}
    line = json.dumps(record, ensure_ascii=draw(st.booleans())).encode("utf-8")
    if kind == "truncated":
        line = line[: draw(st.integers(min_value=0, max_value=len(line)))]
    return line


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(mutated_lines(), min_size=1, max_size=6),
    st.sampled_from(["auto", *sorted({f for f, _ in RECORDS})]),
)
def test_ingest_accounts_for_every_line_of_mutated_records(lines: list[bytes], fmt: str) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "seeds.jsonl"
        path.write_bytes(b"\n".join(lines) + b"\n")
        report = IngestReport(path=str(path))
        events = list(read_records(path, "r", fmt, report))
    letters = [e for e in events if isinstance(e.payload, DeadLetter)]
    added = [e for e in events if isinstance(e.payload, SampleAdded)]
    assert len(letters) + len(added) == len(events)
    non_blank = [number for number, line in enumerate(lines, start=1) if line.strip()]
    assert report.records == len(non_blank) and report.dead_lettered == len(letters)
    # Each non-blank line is either one DeadLetter or read as a record (its samples, or duplicates).
    lettered = {int(e.payload.source_ref.rsplit(":", 1)[1]) for e in letters}
    read = {int(e.payload.source_ref.rsplit(":", 1)[1]) for e in added}
    assert not lettered & read and lettered | read <= set(non_blank)
    assert len(lettered) == len(letters) and sum(report.by_format.values()) == len(non_blank) - len(letters)
    for letter in letters:
        number = int(letter.payload.source_ref.rsplit(":", 1)[1])
        line = lines[number - 1].rstrip(b"\n").removesuffix(b"\r")  # \r\n ends a line too
        assert letter.payload.raw == line and letter.payload.reason
    for event in events:  # publishable
        CODEC.decode(CODEC.encode(event))


# --- poison records on a partition, through the Kafka consumers ---------------------------------------


def _verdict(run_id: str, sample_id: str, note: str) -> Event[Verdict]:
    return event_of(
        Verdict(
            sample_id=sample_id,
            round=1,
            probe_event_id="01JABCDEFGHJKMNPQRSTVWXYZ0",
            tools=[FLUCTUATION],
            messages=CONTEXT,
            label=LABEL,
            prediction=PREDICTION,
            verdict="LABEL_WRONG",
            decided_by="judge",
            error_analysis=note,
        ),
        run_id,
    )


POISON_BYTES = [b"not an event", b"", b"\xc3\x28\xff", b"LTE1" + b"\x00" * 40]


async def test_group_consumer_dead_letters_poison_and_reads_what_follows(settings: Settings) -> None:
    """Good and undecodable records interleaved on ONE partition (one key): every good one arrives."""
    await ensure_topics(settings.kafka, settings.run_id)
    topic = topic_name(settings.run_id, "verdicts")
    good = [_verdict(settings.run_id, "s_same", f"good {i}") for i in range(12)]
    rng = random.Random(7)
    sent_poison = 0
    async with EventProducer(settings.kafka) as producer:
        for index, event in enumerate(good):
            if index % 3 == 1:
                await producer.send_raw(topic, rng.choice(POISON_BYTES), b"s_same")
                sent_poison += 1
            await producer.send_raw(topic, CODEC.encode(event), b"s_same")
        delivered = []
        async with GroupConsumer(
            settings.kafka,
            settings.run_id,
            ["verdicts"],
            group_id=f"{settings.run_id}.poison-test",
            producer=producer,
            stage=Producer(stage="poison-test", version="0"),
        ) as consumer:
            async for batch in asyncio_timeout_batches(consumer, seconds=60):
                delivered.extend(batch)
                if len(delivered) == len(good) and consumer.dead_lettered == sent_poison:
                    await consumer.commit()
                    break
    assert [d.event.event_id for d in delivered] == [e.event_id for e in good]  # all, in log order
    assert len({d.partition for d in delivered}) == 1
    letters = [
        e.payload for e in await _replay(settings, ["deadletter"]) if isinstance(e.payload, DeadLetter)
    ]
    assert len(letters) == sent_poison
    assert all(letter.source_topic == topic and letter.key == b"s_same" for letter in letters)
    offsets = sorted(letter.source_offset for letter in letters)
    good_offsets = {d.offset for d in delivered}
    assert not set(offsets) & good_offsets and max(offsets) < max(good_offsets)  # poison sat between


def test_a_record_read_again_gets_the_same_dead_letter_not_one_more() -> None:
    """A restarted worker re-reads what it had not acknowledged: one bad record, one dead letter per
    stage (it once got a new random id each time, so every restart added a letter and inflated stats)."""
    from aiokafka.structs import ConsumerRecord

    from bus.kafka import dead_letter_for

    def record(offset: int, value: bytes, topic: str = "r.verdicts") -> ConsumerRecord[bytes, bytes]:
        return ConsumerRecord(topic, 0, offset, 0, 0, b"k", value, None, 1, len(value), ())

    stage = Producer(stage="relabel", version="0")
    error = ValueError("corrupt")

    def letter_id(r: ConsumerRecord[bytes, bytes], producer: Producer = stage) -> str:
        return dead_letter_for(r, error, run_id="r", producer=producer).event_id

    assert letter_id(record(5, b"garbage")) == letter_id(record(5, b"garbage"))
    others = {
        letter_id(record(6, b"garbage")),  # another record
        letter_id(record(5, b"other bytes")),  # a new broker reused the offset for another record
        letter_id(record(5, b"garbage", "r.samples")),
        letter_id(record(5, b"garbage"), Producer(stage="expand", version="0")),  # each stage its own
    }
    assert len(others) == 4 and letter_id(record(5, b"garbage")) not in others


def test_a_dead_letter_fits_the_broker_whatever_the_size_of_what_it_accounts_for() -> None:
    """A foreign record of 8 MiB on a stage's topic made a dead letter holding all of it: over the
    producer's limit, the send failed, the agent crashed, and the records behind it were committed
    unprocessed. A dead letter keeps a prefix, the size and the sha256 of what is too big."""
    import hashlib

    from aiokafka.structs import ConsumerRecord

    from bus.kafka import dead_letter_for
    from schemas.codec import default_codec
    from streams.relabel import RelabelStage
    from tests.foundation.events_factory import event_of, sample_added

    huge = b"\xc3\x01" + bytes(8 * 1024 * 1024 - 200)
    record = ConsumerRecord("r.verdicts", 0, 3, 0, 0, b"k", huge, None, 1, len(huge), ())
    letter = dead_letter_for(
        record, ValueError("corrupt"), run_id="r", producer=Producer(stage="relabel", version="0")
    )
    assert len(default_codec().encode(letter)) < 1_000_000  # Kafka's default message.max.bytes
    assert letter.payload.raw == huge[:4096]
    assert f"record of {len(huge)} bytes, sha256 {hashlib.sha256(huge).hexdigest()}" in letter.payload.reason

    small = ConsumerRecord("r.verdicts", 0, 4, 0, 0, b"k", b"garbage", None, 1, 7, ())
    assert (
        dead_letter_for(
            small, ValueError("x"), run_id="r", producer=Producer(stage="relabel", version="0")
        ).payload.raw
        == b"garbage"
    )

    # A stage's own dead letter of an event it cannot process: the same rule.
    big_event = event_of(sample_added("s").model_copy(update={"metadata": {"blob": "x" * 1_200_000}}), "r")
    stage_letter = RelabelStage("r").dead_letter(big_event, ValueError("cannot"))
    assert len(default_codec().encode(stage_letter)) < 1_000_000
    assert "raw keeps its first 4096" in stage_letter.payload.reason


async def test_garbage_on_a_followed_topic_is_dead_lettered_once(settings: Settings) -> None:
    """The samples topic is read by the curator's fold (a follower, no consumer group): garbage there
    was only counted as undecodable. Now it is dead-lettered, one letter however many follow it."""
    from bus.kafka import KafkaEventLog

    await ensure_topics(settings.kafka, settings.run_id)
    topic = topic_name(settings.run_id, "samples")
    async with EventProducer(settings.kafka) as producer:
        await producer.send_raw(topic, b"garbage on the samples topic", b"k")
    log = KafkaEventLog(settings.kafka, settings.run_id)
    for _ in range(2):  # two followers (or one restarted)
        async for batch in log.follow(["samples"]):
            if not batch:
                break  # caught up
    letters = {
        e.event_id: e.payload
        for e in await _replay(settings, ["deadletter"])
        if isinstance(e.payload, DeadLetter)
    }
    assert len(letters) == 1
    [letter] = letters.values()
    assert letter.source_topic == topic and letter.raw == b"garbage on the samples topic"
    assert letter.stage == "follow" and letter.reason


async def test_an_event_of_another_run_is_dead_lettered_and_folded_by_no_one(settings: Settings) -> None:
    """A verdict written under another run id on this run's topic was skipped silently by the stage
    while the curator counted it as a correction due, so the round waited for ever."""
    from bus.kafka import KafkaEventLog
    from schemas.codec import default_codec
    from tests.foundation.events_factory import event_of, sample_added

    await ensure_topics(settings.kafka, settings.run_id)
    ours = event_of(sample_added("s_ours"), settings.run_id)
    theirs = event_of(sample_added("s_theirs"), "r-old")
    async with EventProducer(settings.kafka) as producer:
        await producer.send_all([ours])
        # written straight onto this run's topic, as a producer given the wrong run id would
        topic = topic_name(settings.run_id, "samples")
        await producer.send_raw(topic, default_codec().encode(theirs), theirs.key.encode())
    log = KafkaEventLog(settings.kafka, settings.run_id)
    folded = []
    async for batch in log.follow(["samples"]):
        if not batch:
            break  # caught up
        folded.extend(batch)
    assert [e.payload.sample_id for e in folded if e.event_type == "SampleAdded"] == ["s_ours"]
    assert [
        e.payload.sample_id for e in await _replay(settings, ["samples"]) if e.event_type == "SampleAdded"
    ] == ["s_ours"]
    [letter] = [
        e.payload for e in await _replay(settings, ["deadletter"]) if isinstance(e.payload, DeadLetter)
    ]
    assert "misplaced" in letter.reason and "'r-old'" in letter.reason


async def test_an_event_on_a_topic_that_does_not_carry_its_type_is_dead_lettered(settings: Settings) -> None:
    """A ProbeResult on the verdicts topic was skipped by relabel and expand and never read by the
    judge, while the curator counted it as a mismatch to judge: the round waited for ever."""
    from bus.kafka import MisplacedEventError, placed
    from schemas.codec import default_codec
    from schemas.events import ProbeResult
    from tests.foundation.events_factory import event_of, one_of_each

    await ensure_topics(settings.kafka, settings.run_id)
    [probe] = [payload for payload in one_of_each() if isinstance(payload, ProbeResult)]
    stray = event_of(probe, settings.run_id)
    verdicts = topic_name(settings.run_id, "verdicts")
    with pytest.raises(
        MisplacedEventError, match=r"a ProbeResult on .*verdicts, which does not carry that type"
    ):
        placed(stray, settings.run_id, verdicts)
    assert placed(stray, settings.run_id, topic_name(settings.run_id, "probes")) is stray
    async with EventProducer(settings.kafka) as producer:
        await producer.send_raw(verdicts, default_codec().encode(stray), b"k")
    assert not [e for e in await _replay(settings, ["verdicts", "probes"]) if e.event_id == stray.event_id]


async def asyncio_timeout_batches(consumer: GroupConsumer, seconds: float) -> Any:
    deadline = asyncio.get_running_loop().time() + seconds
    async for batch in consumer.batches(timeout_ms=300):
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("the consumer did not deliver everything in time")
        yield batch


async def _replay(settings: Settings, topics: Sequence[str]) -> list[Event[Any]]:
    found: list[Event[Any]] = []
    async for batch in replay(settings.kafka, settings.run_id, topics):
        found.extend(d.event for d in batch)
    return found


class BuggyRelabel(RelabelStage):
    """The relabel stage with a bug that one input triggers (it raises on it)."""

    async def handle(self, events: Sequence[Event[Any]]) -> list[Event[Any]]:
        if any("poison" in event.payload.error_analysis for event in events):
            raise ValueError("stage bug triggered by this input")
        return [c for c in (correction_for(v, self.producer) for v in events) if c is not None]


@pytest.mark.timeout(180)
async def test_faust_stage_runner_dead_letters_poison_and_processes_what_follows(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A faust worker (run_stages) reading a partition with an undecodable record and an input that
    crashes the stage, between good ones: both are dead-lettered, every good one is relabelled."""
    from bus.worker import run_stages

    monkeypatch.chdir(tmp_path)  # faust writes its app folder into the working directory

    await ensure_topics(settings.kafka, settings.run_id)
    topic = topic_name(settings.run_id, "verdicts")
    good = [_verdict(settings.run_id, "s_same", f"good {i}") for i in range(6)]
    crashing = _verdict(settings.run_id, "s_same", "poison")
    async with EventProducer(settings.kafka) as producer:
        for event in good[:2]:
            await producer.send_raw(topic, CODEC.encode(event), b"s_same")
        await producer.send_raw(topic, b"\x00garbage", b"s_same")
        await producer.send_raw(topic, CODEC.encode(crashing), b"s_same")
        for event in good[2:]:
            await producer.send_raw(topic, CODEC.encode(event), b"s_same")

    stop = asyncio.Event()
    worker = asyncio.create_task(run_stages(settings, [BuggyRelabel(settings.run_id)], stop))
    try:
        deadline = asyncio.get_running_loop().time() + 120
        while True:
            labels = [e for e in await _replay(settings, ["labels"]) if isinstance(e.payload, LabelCorrected)]
            letters = [
                e for e in await _replay(settings, ["deadletter"]) if isinstance(e.payload, DeadLetter)
            ]
            if len(labels) >= len(good) and len(letters) >= 2:
                break
            assert asyncio.get_running_loop().time() < deadline, (len(labels), len(letters))
            assert not worker.done(), worker
            await asyncio.sleep(0.5)
    finally:
        stop.set()
        await asyncio.wait_for(worker, timeout=60)
    assert sorted(e.payload.verdict_event_id for e in labels) == sorted(e.event_id for e in good)
    by_kind = {letter.payload.error_type: letter.payload for letter in letters}
    assert set(by_kind) == {"CorruptEventError", "ValueError"}
    assert (
        by_kind["CorruptEventError"].raw == b"\x00garbage"
        and by_kind["CorruptEventError"].source_topic == topic
    )
    assert by_kind["ValueError"].source_ref == crashing.event_id
    assert "stage bug triggered by this input" in by_kind["ValueError"].reason


# --- the same seeds ingested twice -------------------------------------------------------------------


def test_ingesting_the_seeds_again_does_not_undo_a_relabel(tmp_path: Path) -> None:
    import time

    from streams.curate import Ledger
    from tests.foundation.events_factory import sample_added
    from views.store import SampleStore

    first = event_of(sample_added("s_1"), "r")
    time.sleep(0.002)  # ids are time-ordered: the re-ingest comes later
    fix = event_of(
        LabelCorrected(
            sample_id="s_1",
            round=1,
            verdict_event_id="v",
            old_label=LABEL,
            new_label=PREDICTION,
            reason="judge",
        ),
        "r",
        parent_ids=[first.event_id],
    )
    time.sleep(0.002)
    again = event_of(sample_added("s_1"), "r")
    store = SampleStore(tmp_path / "store")
    store.apply([first, fix, again])
    [row] = store.rows("samples")
    assert json.loads(row["current_label_json"]) == PREDICTION.model_dump(mode="json")
    ledger = Ledger()
    for event in (first, fix, again):
        ledger.add(event)
    assert ledger.labels["s_1"][1] == PREDICTION  # what curation trains on agrees with the store
