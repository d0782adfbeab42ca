"""The demo-levers benchmark reads its ``--set NAME=VALUE`` overrides into DemoScale fields."""

from __future__ import annotations

import argparse
import dataclasses

import pytest

from benchmarks.demo_levers import parse_override
from looptool.demo import SCALES


def test_overrides_are_json_values_of_known_fields() -> None:
    assert parse_override("group_size=16") == ("group_size", 16)
    assert parse_override("max_error_seed_share=0.4") == ("max_error_seed_share", 0.4)
    assert parse_override("max_error_seed_share=none") == ("max_error_seed_share", None)
    scale = dataclasses.replace(SCALES["full"], **dict([parse_override("grpo_epochs=2")]))
    assert scale.grpo_epochs == 2 and scale.group_size == SCALES["full"].group_size


@pytest.mark.parametrize("text", ["group_size", "no_such_field=1", "=3"])
def test_a_bad_override_is_refused_with_the_known_fields(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError, match="group_size"):
        parse_override(text)
