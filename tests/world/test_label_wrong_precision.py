"""LABEL_WRONG precision on the world, with the old rule tier and without it.

The figure comes from benchmarks/label_wrong_precision.py. The rule tier used to relabel a
schema-breaking label under any schema-keeping prediction, a refusal included; now only the judge
says LABEL_WRONG. The world knows the truth, so each relabel is checked.
"""

from __future__ import annotations

from benchmarks.label_wrong_precision import measure


async def test_only_the_judge_says_label_wrong_and_precision_rises() -> None:
    result = await measure(dialogues=150, noise_rate=0.25, judge_error_rate=0.1)
    before, after = result["before"], result["after"]
    print(f"LABEL_WRONG precision: before {before['precision']:.1%}, after {after['precision']:.1%}")
    assert after["by_rules"] == 0 and before["by_rules"] > 0
    # The rule tier's relabels include refusals and wrong calls that broke no rule.
    assert before["right_by_rules"] < before["by_rules"]
    assert after["precision"] > before["precision"]
