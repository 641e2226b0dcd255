"""Fusion: the vector and full-text candidate lists merged into one ranking (RAG_FUSION).

- `rrf`: weighted reciprocal rank fusion: each list adds weight / (60 + rank) for each chunk it
  holds (Cormack et al., 2009), the vector list RAG_FUSION_VECTOR_WEIGHT, the full-text list the
  rest (scaled so that 0.5 is plain RRF).
- `convex`: each list's scores normalised to [0, 1] (full-text scores divided by the best;
  similarities min-max over the list), then weighted the same way.
- `gated` (the default): `rrf`, but the vector list counts only while the embedding model has
  shown that it separates (Gate): a weak or off-domain model ranks like a poor full-text search
  and only pulls good lexical hits down, so its list is left out and the full-text order stands.
  A query with no full-text match is ranked by its vectors alone, whatever the gate says.

bench/retrieval_quality.py measured them (docs/knowledge.md#fusion).
"""

import math
import statistics
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from app.knowledge.index import Candidate

FusionMethod = Literal["rrf", "convex", "gated"]
RRF_K = 60  # reciprocal rank fusion's constant (Cormack et al., 2009)
# The gate's record: the last GATE_WINDOW queries' separations, at least GATE_MINIMUM of them.
GATE_WINDOW = 200
GATE_MINIMUM = 10
# A list shorter than this tells nothing about its spread.
SPREAD_MIN_CANDIDATES = 8


def _head_spread(values: Sequence[float], head: int) -> float:
    """How far the mean of the best `head` values stands above the mean of the rest, in the
    rest's standard deviations (0 when the rest do not vary)."""
    ordered = sorted(values, reverse=True)
    top, rest = ordered[:head], ordered[head:]
    mean = math.fsum(rest) / len(rest)
    spread = math.sqrt(math.fsum((x - mean) ** 2 for x in rest) / len(rest))
    if spread <= 1e-12:
        return 0.0
    return (math.fsum(top) / len(top) - mean) / spread


def separation(similarities: Sequence[float], text_scores: Sequence[float]) -> float | None:
    """How much better the vector list separates its best candidates from the rest than the
    full-text list does for the same query: the largest ratio of their head spreads (the best
    1, 3 and quarter of each list). Above 1, the vectors single out a few chunks more sharply
    than the words do. None when either list is too short to tell."""
    if min(len(similarities), len(text_scores)) < SPREAD_MIN_CANDIDATES:
        return None
    best = 0.0
    for head in (1, 3, max(1, min(len(similarities), len(text_scores)) // 4)):
        text = _head_spread(text_scores, head)
        if text > 0:
            best = max(best, _head_spread(similarities, head) / text)
    return best


@dataclass
class Gate:
    """Whether the embedding model has shown that it separates: the median separation of the
    last GATE_WINDOW queries (this process's) reaches `threshold`, over at least GATE_MINIMUM
    queries. A property of the model, so every user's queries count."""

    threshold: float
    seen: deque[float] = field(default_factory=lambda: deque(maxlen=GATE_WINDOW))

    def observe(self, vector: Sequence[Candidate], full_text: Sequence[Candidate]) -> None:
        value = separation([1 - c.value for c in vector], [c.value for c in full_text])
        if value is not None and math.isfinite(value):
            self.seen.append(value)

    @property
    def open(self) -> bool:
        return len(self.seen) >= GATE_MINIMUM and statistics.median(self.seen) >= self.threshold


@dataclass
class Fused:
    """One chunk of the fused ranking, with what put it there."""

    chunk_id: int
    score: float
    lexical_rank: int | None = None
    vector_rank: int | None = None
    similarity: float | None = None
    rerank_score: float | None = None


class FusionPolicy:
    def __init__(
        self,
        method: FusionMethod = "rrf",
        vector_weight: float = 0.5,
        gate: float = 1.5,
        *,
        min_similarity: float = -1.0,
    ) -> None:
        """`min_similarity`: the cosine similarity a vector candidate needs to take part
        (RAG_MIN_SIMILARITY)."""
        self.method = method
        self.vector_weight = vector_weight
        self.min_similarity = min_similarity
        self.gate = Gate(gate)

    def vector_share(self, vector: Sequence[Candidate], full_text: Sequence[Candidate]) -> float:
        """The weight the vector list gets for this query (`gated`: the query joins the gate's
        record first)."""
        if self.method != "gated":
            return self.vector_weight
        if not full_text:
            return 1.0
        if vector:
            self.gate.observe(vector, full_text)
        return self.vector_weight if self.gate.open else 0.0

    def fuse(
        self, vector: Sequence[Candidate], full_text: Sequence[Candidate], *, limit: int
    ) -> list[Fused]:
        """The best `limit` chunks, best first (ties by chunk id). Each list arrives best first:
        vectors by cosine distance, full text by its rank score (higher is better)."""
        share = self.vector_share(vector, full_text)
        fused: dict[int, Fused] = {}
        kept = [c for c in vector if 1 - c.value >= self.min_similarity]
        for rank, candidate in enumerate(kept, start=1):
            fused[candidate.chunk_id] = Fused(
                candidate.chunk_id, 0.0, vector_rank=rank, similarity=1 - candidate.value
            )
        for rank, candidate in enumerate(full_text, start=1):
            entry = fused.setdefault(candidate.chunk_id, Fused(candidate.chunk_id, 0.0))
            entry.lexical_rank = rank
        if self.method in ("rrf", "gated"):
            for entry in fused.values():
                if entry.vector_rank is not None:
                    entry.score += 2 * share / (RRF_K + entry.vector_rank)
                if entry.lexical_rank is not None:
                    entry.score += 2 * (1 - share) / (RRF_K + entry.lexical_rank)
        else:
            text_scores = {c.chunk_id: c.value for c in full_text}
            best_text = max(text_scores.values(), default=0.0)
            sims = [1 - c.value for c in kept]
            low, high = (min(sims), max(sims)) if sims else (0.0, 0.0)
            for entry in fused.values():
                if entry.similarity is not None and share > 0:
                    norm = (entry.similarity - low) / (high - low) if high > low else 1.0
                    entry.score += share * norm
                if entry.lexical_rank is not None and share < 1:
                    value = text_scores[entry.chunk_id]
                    norm = value / best_text if best_text > 0 and math.isfinite(value) else 1.0
                    entry.score += (1 - share) * norm
        if share <= 0:
            fused = {k: v for k, v in fused.items() if v.lexical_rank is not None}
        elif share >= 1:
            fused = {k: v for k, v in fused.items() if v.vector_rank is not None}
        ranked = sorted(fused.values(), key=lambda e: (-e.score, e.chunk_id))
        return ranked[:limit]
