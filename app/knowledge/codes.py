"""Short codes of the vectors, for SQLite's coarse vector search (index.py).

sqlite-vec has no approximate index: a search scans every vector of the user's partition, and at
100,000 chunks of 384 float32 values that is 150 MB to read per query. The codes are a fifth of
that. Each dimension of the unit-length vector is cut into 8 levels at the standard normal's
octiles (the components of a unit vector in D dimensions are about N(0, 1/D)), and the level is
written as a 7-bit thermometer code (level 3 is 1110000). The Hamming distance of two such codes
is the L1 distance of their levels, which ranks neighbours closely enough that the exact cosine
over a few hundred candidates finds the true top 10 (bench/README.md: recall@10).

Alembic migration 0014 holds a frozen copy of `quantize` to code the vectors indexed before it:
change the code here and you need a new migration that codes every vector again.
"""

import math
from bisect import bisect_right
from collections.abc import Sequence

BITS_PER_DIMENSION = 7
# The standard normal's octiles: 8 equally likely levels of a component scaled to unit variance.
THRESHOLDS = (-1.1503, -0.6745, -0.3186, 0.0, 0.3186, 0.6745, 1.1503)
_THERMOMETER = tuple("1" * level + "0" * (BITS_PER_DIMENSION - level) for level in range(8))


def code_bits(dimensions: int) -> int:
    """The code's length in bits: 7 per dimension, rounded up to whole bytes (vec0 bit[])."""
    return (dimensions * BITS_PER_DIMENSION + 7) // 8 * 8


def quantize(vector: Sequence[float]) -> bytes:
    """The vector's code (code_bits(len(vector)) bits). Scale does not matter, as for cosine."""
    norm = math.sqrt(sum(x * x for x in vector)) or 1.0
    scale = math.sqrt(len(vector)) / norm
    bits = "".join(_THERMOMETER[bisect_right(THRESHOLDS, x * scale)] for x in vector)
    length = code_bits(len(vector))
    return int(bits.ljust(length, "0"), 2).to_bytes(length // 8, "big")
