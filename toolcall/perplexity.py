"""Sample perplexity (Eq. 3) and the high-perplexity selection rule of Greedy Capability Probing."""

from __future__ import annotations

import math
from collections.abc import Sequence


def perplexity(token_logprobs: Sequence[float]) -> float:
    """PPL = exp(-(1/L) Σ log p(o_i | T, c_t, o_<i)) over the L output tokens.

    Raises ValueError for an empty output (perplexity is undefined) or a non-finite log-prob.
    """
    if not token_logprobs:
        raise ValueError("perplexity of an empty output is undefined")
    total = 0.0
    for value in token_logprobs:
        if not math.isfinite(value) and value != -math.inf:
            raise ValueError(f"invalid token log-prob {value!r}")
        total += value
    mean = total / len(token_logprobs)
    return math.inf if mean == -math.inf else math.exp(-mean)


def select_high_ppl(
    pool: Sequence[tuple[str, float]],
    *,
    quantile: float = 0.5,
    threshold: float | None = None,
    max_count: int | None = None,
) -> list[str]:
    """Ids of the high-perplexity samples of ``pool`` ((id, ppl) pairs), highest PPL first.

    With ``threshold``, every sample whose PPL is at least that value; otherwise those at or above the
    ``quantile`` of the pool's PPLs (0.5: the upper half; 0.8: the top fifth). Ties are broken by id,
    so the choice is deterministic. ``max_count`` caps the result.
    """
    if not 0 < quantile <= 1:
        raise ValueError(f"quantile must be in (0, 1], got {quantile}")
    ranked = sorted(pool, key=lambda item: (-item[1], item[0]))
    if not ranked:
        return []
    if threshold is None:
        values = sorted(ppl for _, ppl in ranked)
        # The value with a `quantile` share of the pool below it (1.0 keeps only the highest).
        threshold = values[min(len(values) - 1, math.floor(quantile * len(values)))]
    chosen = [sample_id for sample_id, ppl in ranked if ppl >= threshold]
    return chosen[:max_count] if max_count is not None else chosen
