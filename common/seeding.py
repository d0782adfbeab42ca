"""Random draws seeded by stable strings (event ids, run ids): the same inputs give the same draws.

Stages draw with these so a redelivered input is processed exactly as the first time; the synthetic
world draws with them so a simulated run is reproducible.
"""

from __future__ import annotations

import hashlib
import random


def seeded_rng(*parts: str) -> random.Random:
    """A random generator seeded by stable strings (event ids, run id): same inputs, same draws."""
    digest = hashlib.blake2b("\x1f".join(parts).encode("utf-8"), digest_size=8).digest()
    return random.Random(int.from_bytes(digest, "big"))
