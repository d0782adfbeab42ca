"""Materialising D_j: rows as the policy sees them, and the manifest contract (count and hashes)."""

from __future__ import annotations

from typing import Any

import pytest

from bus.kafka import EventProducer, ensure_topics
from looptool.config import Settings
from schemas.events import CuratedSample, Event, RoundClosed
from tests.trainer import toy
from toolcall.parsing import render_action
from toolcall.prompts import build_chat
from toolcall.types import Action, ToolCall
from trainer.dataset import RoundDataError, RoundIncomplete, load_round_dataset, round_dataset

CITIES = ("Rome", "Paris", "Oslo")


def _split(events: list[Event[object]]) -> tuple[list[Event[object]], Event[RoundClosed]]:
    return events[:-1], events[-1]  # type: ignore[return-value]


def test_rows_carry_the_policy_chat_the_label_and_a_working_reward() -> None:
    members, manifest = _split(toy.round_events("r", CITIES))
    dataset = round_dataset(manifest, members, current_time="2030-05-06 07:08:09")
    assert dataset.round == 1
    assert dataset.manifest_event_id == manifest.event_id
    assert dataset.content_hash == manifest.payload.content_hash
    assert [row.sample_id for row in dataset.rows] == ["s-oslo", "s-paris", "s-rome"]  # sample-id order
    row = dataset.rows[1]
    sample = toy.weather_sample("Paris")
    assert row.chat == build_chat(sample.tools, sample.messages, "2030-05-06 07:08:09")
    assert "2030-05-06 07:08:09" in row.chat[0]["content"]
    assert row.target() == render_action(sample.label)
    assert row.reward(row.target()) == 1
    wrong = Action(calls=[ToolCall(name="get_weather", arguments={"city": "Rome"})])
    assert row.reward(render_action(wrong)) == 0
    assert row.reward("I don't know") == 0
    assert '"label"' in row.ground_truth and "Paris" in row.ground_truth


def test_redelivered_members_count_once_and_other_rounds_are_ignored() -> None:
    members, manifest = _split(toy.round_events("r", CITIES))
    other_round = toy.round_events("r", ("Lima",), round_=2)[0]
    dataset = round_dataset(manifest, [*members, members[0], other_round, manifest])
    assert len(dataset) == 3


def test_a_missing_member_is_reported_as_incomplete() -> None:
    members, manifest = _split(toy.round_events("r", CITIES))
    with pytest.raises(RoundIncomplete, match="2 members readable, the manifest lists 3"):
        round_dataset(manifest, members[:2])


def test_an_extra_member_is_an_error() -> None:
    members, manifest = _split(toy.round_events("r", CITIES))
    extra = toy.round_events("r", ("Lima",))[0]
    with pytest.raises(RoundDataError, match="4 members found, the manifest lists only 3"):
        round_dataset(manifest, [*members, extra])


def test_a_member_whose_content_does_not_match_its_hash_is_an_error() -> None:
    members, manifest = _split(toy.round_events("r", CITIES))
    tampered_payload: CuratedSample = members[0].payload  # type: ignore[assignment]
    tampered = members[0].model_copy(
        update={"payload": tampered_payload.model_copy(update={"label": Action(text="no call")})}
    )
    with pytest.raises(RoundDataError, match="claims content hash"):
        round_dataset(manifest, [tampered, *members[1:]])


def test_a_different_member_set_does_not_match_the_manifest_hash() -> None:
    _, manifest = _split(toy.round_events("r", CITIES))
    others, _ = _split(toy.round_events("r", ("Lima", "Cairo", "Delhi")))
    with pytest.raises(RoundDataError, match="the manifest says"):
        round_dataset(manifest, others)


def test_two_contents_for_one_sample_are_an_error() -> None:
    members, manifest = _split(toy.round_events("r", CITIES))
    payload: CuratedSample = members[0].payload  # type: ignore[assignment]
    sample = toy.weather_sample("Lima")
    clash = members[0].model_copy(
        update={
            "event_id": "01" + "Z" * 24,
            "payload": payload.model_copy(
                update={
                    "messages": sample.messages,
                    "label": sample.label,
                    "content_hash": sample.content_hash(),
                }
            ),
        }
    )
    with pytest.raises(RoundDataError, match="two different contents"):
        round_dataset(manifest, [*members, clash])


def test_source_counts_must_match_the_manifest() -> None:
    members, manifest = _split(toy.round_events("r", CITIES))
    wrong_counts = manifest.model_copy(
        update={"payload": manifest.payload.model_copy(update={"counts": {"SEED": 2, "ES": 1}})}
    )
    with pytest.raises(RoundDataError, match="sources"):
        round_dataset(wrong_counts, members)


async def test_load_round_dataset_reads_the_curated_topic(settings: Settings) -> None:
    await ensure_topics(settings.kafka, settings.run_id)
    events = toy.round_events(settings.run_id, CITIES)
    members, manifest = _split(events)
    async with EventProducer(settings.kafka) as producer:
        await producer.send_all(members[:2])
        with pytest.raises(RoundIncomplete):
            await load_round_dataset(settings, manifest, wait_s=0)
        await producer.send_all([members[2], manifest])
    dataset = await load_round_dataset(settings, manifest, wait_s=5)
    assert [row.sample_id for row in dataset.rows] == ["s-oslo", "s-paris", "s-rome"]
    assert dataset.rows[0].chat[0]["content"].count(settings.loop.current_time) == 1


async def test_loading_a_round_keeps_only_that_rounds_members(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every round's members were held to load one round: ~6 KB per member ever curated, growing
    round after round (5.7 GB to load round 10 of a run with |D_j| = 100k, measured and extrapolated)."""
    import trainer.dataset as dataset_module

    await ensure_topics(settings.kafka, settings.run_id)
    first, _ = _split(toy.round_events(settings.run_id, CITIES, round_=1))
    second, manifest = _split(toy.round_events(settings.run_id, CITIES, round_=2))
    async with EventProducer(settings.kafka) as producer:
        await producer.send_all([*first, *second, manifest])
    seen: list[int] = []
    checked = dataset_module.round_dataset

    def recording(manifest_: Any, members: Any, current_time: str) -> Any:
        members = list(members)
        seen.extend(m.payload.round for m in members if m.event_type == "CuratedSample")
        return checked(manifest_, members, current_time)

    monkeypatch.setattr(dataset_module, "round_dataset", recording)
    dataset = await load_round_dataset(settings, manifest, wait_s=5)
    assert dataset.round == 2 and set(seen) == {2}
