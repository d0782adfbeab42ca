"""One realistic example payload per event type, for codec and store tests."""

from __future__ import annotations

from schemas.codec import schema_definition
from schemas.events import (
    CheckpointEvaluated,
    CheckpointPublished,
    CuratedSample,
    DeadLetter,
    Event,
    ExpansionCandidate,
    JudgeVote,
    LabelCorrected,
    MatchDiff,
    Payload,
    PolicyPromoted,
    ProbeResult,
    Producer,
    PromotionRefused,
    RoundClosed,
    RuleViolation,
    SampleAdded,
    Scenario,
    ToolSetRegistered,
    Verdict,
    VerificationResult,
    make_event,
)
from schemas.interning import toolset_digest
from schemas.registry import default_registry
from toolcall.specs import ParamSchema, ToolSpec
from toolcall.types import Action, Message, ToolCall

PRODUCER = Producer(stage="test", version="0")

FLUCTUATION = ToolSpec(
    name="get_exchange_fluctuation",
    description="Fluctuation of a currency against others between two dates.",
    parameters=ParamSchema(
        type="object",
        properties={
            "start_date": ParamSchema(type="string"),
            "end_date": ParamSchema(type="string"),
            "base": ParamSchema(type="string"),
            "symbols": ParamSchema(type="string"),
        },
        required=["start_date", "end_date", "base", "symbols"],
    ),
)
CONTEXT = [Message(role="user", content="How did the Euro move against the Dollar in 2020?")]
LABEL = Action(
    calls=[
        ToolCall(
            name="get_exchange_fluctuation",
            arguments={"start_date": "2020-01-01", "end_date": "2021-01-01", "base": "usd", "symbols": "eur"},
        )
    ]
)
PREDICTION = Action(
    calls=[
        ToolCall(
            name="get_exchange_fluctuation",
            arguments={"start_date": "2020-01-01", "end_date": "2021-01-01", "base": "eur", "symbols": "usd"},
        )
    ]
)


def sample_added(sample_id: str = "s_1", label: Action = LABEL) -> SampleAdded:
    return SampleAdded(
        sample_id=sample_id,
        tools=[FLUCTUATION],
        messages=CONTEXT,
        label=label,
        origin="seed",
        round=0,
        source_format="paper",
        source_ref="seeds.jsonl:1",
        content_hash="abc",
        metadata={"note": "figure 12", "nested": {"k": [1, 2.5, None]}},
    )


TIME = "2026-03-01 10:00:00"


def one_of_each() -> list[Payload]:
    return [
        sample_added().model_copy(update={"conversation_time": TIME}),
        ProbeResult(
            sample_id="s_1",
            round=1,
            label_event_id="01JABCDEFGHJKMNPQRSTVWXYZ0",
            tools=[FLUCTUATION],
            messages=CONTEXT,
            label=LABEL,
            raw_output="<think>...</think><tool_call>...</tool_call>",
            prediction=PREDICTION,
            matched=False,
            diffs=[MatchDiff(kind="wrong_argument", path="base", detail={"expected": "usd", "got": "eur"})],
            ppl=1.73,
            num_tokens=42,
            high_ppl=True,
            conversation_time=TIME,
        ),
        Verdict(
            sample_id="s_1",
            round=1,
            probe_event_id="p",
            tools=[FLUCTUATION],
            messages=CONTEXT,
            label=LABEL,
            prediction=PREDICTION,
            ppl=1.73,
            verdict="LABEL_WRONG",
            decided_by="judge",
            label_position=2,
            error_analysis="base and symbols are swapped",
            correct_approach="use EUR as base",
            raw_response="RESPONSE 2 INCORRECT ...",
            judge_model="qwen3-32b",
            votes=[
                JudgeVote(judge_model="qwen3-32b", label_position=2, verdict="LABEL_WRONG", counted=True),
                JudgeVote(
                    judge_model="llama-3.3-70b",
                    label_position=2,
                    status="truncated",
                    attempts=1,
                    reason="truncated: the answer was cut off at 4096 tokens",
                    raw_response="<think>the user asks",
                ),
            ],
            quorum=1,
            conversation_time=TIME,
        ),
        LabelCorrected(
            sample_id="s_1",
            round=1,
            verdict_event_id="v",
            old_label=LABEL,
            new_label=PREDICTION,
            reason="judge",
        ),
        ExpansionCandidate(
            candidate_id="c_1",
            seed_sample_id="s_1",
            round=1,
            verdict_event_id="v",
            index=0,
            count=4,
            scenario=Scenario(focus="travel budgeting", parameters="different currencies and dates"),
            tools=[FLUCTUATION],
            messages=CONTEXT,
            label=PREDICTION,
            raw_response="INPUT: ... OUTPUT: ...",
            conversation_time=TIME,
        ),
        VerificationResult(
            candidate_id="c_1",
            seed_sample_id="s_1",
            round=1,
            passed=False,
            failed_tier="rules",
            rule_violations=[RuleViolation(code="missing_required", message="symbols missing", call_index=0)],
        ),
        CuratedSample(
            round=2,
            sample_id="s_1",
            source="ES",
            tools=[FLUCTUATION],
            messages=CONTEXT,
            label=PREDICTION,
            label_event_id="l",
            content_hash="abc",
            conversation_time=TIME,
        ),
        RoundClosed(
            round=2,
            total=10,
            counts={"ES": 2, "EE": 5, "HPPL": 1, "SEED_NEW": 2},
            content_hash="h",
            target_size=10,
            seed_new_fraction=0.2,
        ),
        CheckpointPublished(
            new_checkpoint_id="ckpt-1",
            round=1,
            step=20,
            final=True,
            uri="/tmp/ckpt-1",
            backend="cpu",
            metrics={"reward_mean": 0.5, "loss": 0.1},
            wall_time_s=12.5,
        ),
        CheckpointEvaluated(
            checkpoint_id="ckpt-1",
            round=1,
            step=20,
            final=True,
            suite="bfcl-v4-single-turn",
            suite_version="2026.3.23",
            categories=["multiple", "irrelevance"],
            limit=2,
            correct={"multiple": 1, "irrelevance": 2},
            total={"multiple": 2, "irrelevance": 2},
            accuracy={"multiple": 0.5, "irrelevance": 1.0},
            summary={"non_live_ast": 0.5, "irrelevance": 1.0, "overall": 0.75},
            wall_time_s=3.5,
            results_uri="/tmp/eval/ckpt-1.jsonl",
            heldout_correct=60,
            heldout_total=100,
            heldout_source="heldout.jsonl@0123abcd",
            output_reading="bfcl",
        ),
        PolicyPromoted(
            checkpoint_id="ckpt-1",
            round=1,
            step=20,
            final=True,
            uri="/tmp/ckpt-1",
            evaluation_event_id="01JEVALUATION0000000000001",
            figures={"heldout_toolmatch": 0.6, "overall": 0.75},
            counts={"heldout_toolmatch": 100, "overall": 4},
            tolerance=0.01,
            reason="no promoted policy yet",
        ),
        PromotionRefused(
            checkpoint_id="ckpt-2",
            round=2,
            step=40,
            final=True,
            evaluation_event_id="01JEVALUATION0000000000002",
            promoted_checkpoint_id="ckpt-1",
            promoted_evaluation_event_id="01JEVALUATION0000000000001",
            figures={"heldout_toolmatch": 0.55, "overall": 0.75},
            counts={"heldout_toolmatch": 100, "overall": 4},
            promoted_figures={"heldout_toolmatch": 0.6, "overall": 0.75},
            promoted_counts={"heldout_toolmatch": 100, "overall": 4},
            deltas={"heldout_toolmatch": -0.05, "overall": 0.0},
            tolerance=0.01,
            regressions=["heldout_toolmatch"],
            reason="heldout_toolmatch fell 0.05 below the promoted policy's",
        ),
        ToolSetRegistered(toolset=toolset_digest([FLUCTUATION]).hex(), tools=[FLUCTUATION]),
        schema_definition(default_registry().current("RoundClosed")),
        DeadLetter(
            stage="ingest", reason="bad json", error_type="JSONDecodeError", raw=b"\xff\x00{", key=b"k"
        ),
    ]


def event_of(payload: Payload, run_id: str = "r", **kwargs: object) -> Event[Payload]:
    return make_event(payload, run_id=run_id, producer=PRODUCER, **kwargs)  # type: ignore[arg-type]


def beyond_avro(codec) -> list[bytes]:
    """Bytes of a SampleAdded that Avro reads but a model read must refuse: a Literal field outside its
    values, JSON fields of the wrong shape, a role that does not exist (``codec`` writes the event)."""
    import io

    import fastavro

    from schemas.registry import default_registry

    schema = default_registry().current("SampleAdded")
    data = codec.encode(event_of(sample_added()))
    mangled = []
    for mangle in (
        lambda r: r["payload"].update(origin="imported"),
        lambda r: r["payload"].update(metadata_json="[1, 2]"),
        lambda r: r["payload"]["label"]["calls"][0].update(arguments_json='"text"'),
        lambda r: r["payload"]["messages"][0].update(role="robot"),
    ):
        record = fastavro.schemaless_reader(io.BytesIO(data[10:]), schema.parsed)
        mangle(record)
        body = io.BytesIO()
        fastavro.schemaless_writer(body, schema.parsed, record)
        mangled.append(data[:10] + body.getvalue())
    return mangled
