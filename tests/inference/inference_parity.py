"""Compare another backend's greedy decoding with the transformers backend's, soundly.

Two correct float32 implementations (vLLM's CPU kernels vs PyTorch eager, KV cache vs full forward)
give logits that differ by ~1e-6. Greedy decoding is then identical except where the two best
tokens are within that noise of each other: from such a near-tie on, the sequences may part. So:
on the common prefix the log-probs must agree closely, and where the sequences part the two
candidate tokens must be a near-tie under the reference model. A real bug (wrong prompt, wrong
weights, wrong positions) parts sequences at a clear margin and fails.
"""

from __future__ import annotations

from collections.abc import Sequence

from inference.base import Chat, Generation
from inference.transformers_backend import TransformersBackend, encode_prompt

LOGPROB_TOLERANCE = 1e-3
NEAR_TIE = 1e-3


def compare_greedy(
    reference: TransformersBackend,
    chat: Chat,
    expected: Generation,
    token_ids: Sequence[int],
    token_logprobs: Sequence[float],
) -> bool:
    """True if ``token_ids`` equal the reference's greedy ids; else assert the parting is a near-tie."""
    ids = list(token_ids)
    if token_logprobs:
        assert len(token_logprobs) == len(ids), "one log-prob per token"
    common = 0
    while common < min(len(ids), len(expected.token_ids)) and ids[common] == expected.token_ids[common]:
        common += 1
    for position in range(common if token_logprobs else 0):
        got, want = token_logprobs[position], expected.token_logprobs[position]
        assert abs(got - want) <= LOGPROB_TOLERANCE, f"log-prob of token {position}: {got} vs {want}"
    if common == len(ids) == len(expected.token_ids):
        return True
    assert common < len(ids) and common < len(expected.token_ids), (
        f"one sequence is a strict prefix of the other: {ids} vs {expected.token_ids}"
    )
    prefix = encode_prompt(reference.tokenizer, chat) + ids[:common]
    mine, theirs = reference.score_token_ids(
        [(prefix, [expected.token_ids[common]]), (prefix, [ids[common]])]
    )
    margin = mine[0] - theirs[0]
    assert 0.0 <= margin <= NEAR_TIE, (
        f"greedy parted at token {common} with a log-prob margin of {margin:.2e} (not a near-tie): "
        f"{expected.token_ids} vs {ids}"
    )
    return False
