"""Retrieval quality: does search find the judged passages? nDCG@10, recall@10 and MRR@10 of
Parley's own ingestion and `GET /api/collections/{id}/search`, through the API, on public test
collections with graded relevance judgements, against an Okapi BM25 reference (rank-bm25).

    .venv/bin/python bench/retrieval_quality.py                     # both collections, SQLite
    .venv/bin/python bench/retrieval_quality.py --collection bench/collections/cranfield
    .venv/bin/python bench/retrieval_quality.py --collection /path/to/beir/scifact   # any BEIR dir
    .venv/bin/python bench/retrieval_quality.py --grid     # every fusion candidate (for tuning)

A collection is a directory in BEIR's format: corpus.jsonl[.gz] ({"_id", "title", "text"}),
queries.jsonl ({"_id", "text"}) and qrels/test.tsv (query-id, corpus-id, score; higher is more
relevant). bench/README.md says where the two shipped ones come from and how to fetch others.

Parley runs in this process (its app over an ASGI transport, a temporary SQLite database or,
with --db postgres, a Postgres 16 with pgvector from the `pgserver` package) with the tests' fake
upstream (tests/support/fake_upstream.py) on a loopback port serving embeddings and /rerank.
Every document is uploaded (POST /api/files) and added to a collection, ingested by Parley's
workers, and every query searched with limit=10 under each configuration, one app per
configuration over the same database:

- full text only (RAG_FUSION_VECTOR_WEIGHT=0), vector only (=1), hybrid as the defaults fuse it
  (and with --grid each candidate fusion), hybrid + reranker (RERANK_BASE_URL at the fake);
- with two embedding endpoints: `weak`, the fake upstream's hashed bag of words (what a small
  or off-domain model gives), and `oracle`, a deterministic embedding built from the judgements
  (each query's judged documents share a direction, weighted by grade) blended with the weak
  one and noise: good but not perfect, to show what fusion gains when the vectors are good.
  `--embedding-url URL --embedding-model NAME --dimensions N` measures a real endpoint instead.

The reranker double scores a passage by its judged grade plus Gaussian noise (deterministic).
"""

import argparse
import asyncio
import gzip
import hashlib
import json
import math
import random
import re
import statistics
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
from rank_bm25 import BM25Okapi  # noqa: E402

from app.core.config import Settings  # noqa: E402
from tests.support.api import SignedInUser, register  # noqa: E402
from tests.support.app import serving  # noqa: E402
from tests.support.database import TestDatabase, migrate  # noqa: E402
from tests.support.fake_upstream import FakeUpstream, fake_embedding, run_fake_upstream  # noqa: E402
from tests.support.settings import make_settings  # noqa: E402
from tests.support.sse import collect_sse  # noqa: E402

DATA = ROOT / "bench" / "collections"
DEFAULT_COLLECTIONS = [DATA / "cranfield", DATA / "squad-dev-5"]
DIMENSIONS = 384
K = 10
WORD = re.compile(r"[^\W_]+")


# --- Collections ------------------------------------------------------------------------------


@dataclass
class TestCollection:
    name: str
    docs: dict[str, tuple[str, str]]  # id -> (title, text)
    queries: dict[str, str]
    qrels: dict[str, dict[str, int]]  # query -> doc -> grade (> 0)

    def content(self, doc_id: str) -> str:
        title, text = self.docs[doc_id]
        return text if not title or text.startswith(title.rstrip(" .")) else f"{title}\n\n{text}"


def load(directory: Path, limit: int | None) -> TestCollection:
    corpus = directory / "corpus.jsonl"
    opener: Callable[..., Any] = open
    if not corpus.exists():
        corpus, opener = directory / "corpus.jsonl.gz", gzip.open
    docs: dict[str, tuple[str, str]] = {}
    with opener(corpus, "rt", encoding="utf-8") as lines:
        for line in lines:
            row = json.loads(line)
            title, text = row.get("title") or "", row.get("text") or ""
            if title.strip() or text.strip():  # Cranfield has two empty records
                docs[str(row["_id"])] = (title, text)
    queries = {}
    with open(directory / "queries.jsonl", encoding="utf-8") as lines:
        for line in lines:
            row = json.loads(line)
            queries[str(row["_id"])] = row["text"]
    qrels: dict[str, dict[str, int]] = defaultdict(dict)
    with open(directory / "qrels" / "test.tsv", encoding="utf-8") as lines:
        for number, line in enumerate(lines):
            parts = line.rstrip("\n").split("\t")
            if number == 0 and not parts[-1].lstrip("-").isdigit():
                continue  # the header
            if int(parts[-1]) > 0 and parts[1] in docs:
                qrels[parts[0]][parts[1]] = int(parts[-1])
    judged = [q for q in queries if q in qrels]
    if limit is not None and len(judged) > limit:
        judged = random.Random(13).sample(judged, limit)
    return TestCollection(
        directory.name, docs, {q: queries[q] for q in sorted(judged)}, dict(qrels)
    )


# --- Metrics ----------------------------------------------------------------------------------


def scores(ranking: list[str], judged: dict[str, int]) -> tuple[float, float, float]:
    """nDCG@10 (linear gains), recall@10 (of the judged documents), MRR@10."""
    top = ranking[:K]
    dcg = sum(judged.get(doc, 0) / math.log2(i + 2) for i, doc in enumerate(top))
    ideal = sorted(judged.values(), reverse=True)[:K]
    idcg = sum(g / math.log2(i + 2) for i, g in enumerate(ideal))
    recall = sum(1 for doc in top if doc in judged) / len(judged)
    rr = next((1 / (i + 1) for i, doc in enumerate(top) if doc in judged), 0.0)
    return (dcg / idcg if idcg else 0.0), recall, rr


def mean_scores(rankings: dict[str, list[str]], c: TestCollection) -> tuple[float, float, float]:
    rows = [scores(rankings[q], c.qrels[q]) for q in c.queries]
    return tuple(statistics.fmean(column) for column in zip(*rows, strict=True))  # type: ignore[return-value]


def bm25_rankings(c: TestCollection) -> dict[str, list[str]]:
    ids = list(c.docs)
    model = BM25Okapi([[w.casefold() for w in WORD.findall(c.content(i))] for i in ids])
    out = {}
    for q, text in c.queries.items():
        values = model.get_scores([w.casefold() for w in WORD.findall(text)])
        order = sorted(range(len(ids)), key=lambda i: -values[i])[:K]
        out[q] = [ids[i] for i in order]
    return out


# --- The judgement-built doubles: embedding and reranker ---------------------------------------


def _gauss(seed: str, n: int) -> list[float]:
    rng = random.Random(hashlib.blake2b(seed.encode(), digest_size=8).digest())
    return [rng.gauss(0, 1) for _ in range(n)]


def _unit(v: list[float]) -> list[float]:
    norm = math.sqrt(sum(x * x for x in v)) or 1.0
    return [x / norm for x in v]


class Judge:
    """Tells which document a chunk's text comes from (by its word 6-grams) and which query a
    text is; builds the oracle-ish vectors and the reranker's scores from the judgements."""

    def __init__(self, collections: list[TestCollection], noise: float, rerank_noise: float):
        self.noise = noise
        self.rerank_noise = rerank_noise
        self.shingles: dict[tuple[str, ...], set[str]] = defaultdict(set)
        self.queries: dict[str, str] = {}
        self.grades: dict[str, dict[str, int]] = defaultdict(dict)  # doc -> query -> grade
        self.qrels: dict[str, dict[str, int]] = {}
        for c in collections:
            for doc_id in c.docs:
                words = _words(c.content(doc_id))
                key = f"{c.name}/{doc_id}"
                for i in range(max(1, len(words) - 5)):
                    self.shingles[tuple(words[i : i + 6])].add(key)
            for q, text in c.queries.items():
                self.queries[" ".join(_words(text))] = f"{c.name}/{q}"
                self.qrels[f"{c.name}/{q}"] = {f"{c.name}/{d}": g for d, g in c.qrels[q].items()}
                for d, g in c.qrels[q].items():
                    self.grades[f"{c.name}/{d}"][f"{c.name}/{q}"] = g

    def document(self, text: str) -> str | None:
        words = _words(text)
        votes: Counter[str] = Counter()
        for i in range(0, max(1, len(words) - 5), 3):
            votes.update(self.shingles.get(tuple(words[i : i + 6]), ()))
        return votes.most_common(1)[0][0] if votes else None

    def query(self, text: str) -> str | None:
        return self.queries.get(" ".join(_words(text)))

    def embed(self, text: str, dimensions: int) -> list[float]:
        """Weak vector + a direction per judged query (weighted by grade) + noise."""
        base = fake_embedding(text, dimensions)
        query = self.query(text)
        extra = [0.0] * dimensions
        if query is not None:
            extra = _unit(_gauss(query, dimensions))
            seed = query
        else:
            doc = self.document(text)
            seed = doc or text
            if doc is not None:
                for q, grade in self.grades[doc].items():
                    direction = _unit(_gauss(q, dimensions))
                    weight = (grade / max(self.qrels[q].values())) ** 2
                    extra = [e + weight * d for e, d in zip(extra, direction, strict=True)]
        noise = _unit(_gauss("noise:" + seed, dimensions))
        return _unit(
            [
                0.6 * b + e + self.noise * n
                for b, e, n in zip(base, _unit(extra) if any(extra) else extra, noise, strict=True)
            ]
        )

    def rerank(self, query_text: str, document: str) -> float:
        query, doc = self.query(query_text), self.document(document)
        if query is None or doc is None:
            return 0.0
        grades = self.qrels[query]
        grade = grades.get(doc, 0) / max(grades.values())
        return grade + self.rerank_noise * _gauss(f"{query}|{doc}", 1)[0]


def _words(text: str) -> list[str]:
    return [w.casefold() for w in WORD.findall(text)]


# --- Parley through its API -------------------------------------------------------------------


@dataclass
class Loaded:
    collection: TestCollection
    user: SignedInUser
    collection_id: str
    file_doc: dict[str, str] = field(default_factory=dict)  # file name -> doc id


def settings_for(
    db: TestDatabase, fake: FakeUpstream, args: argparse.Namespace, tmp: Path, **extra: Any
) -> Settings:
    values: dict[str, Any] = {
        "embedding_base_url": args.embedding_url or fake.base_url,
        "embedding_model": args.embedding_model,
        "embedding_dimensions": args.dimensions,
        "auto_title": False,
        "file_storage_dir": str(tmp / "files"),
        "llm_base_url": fake.base_url,
        "llm_model": "fake-model",
        "db_pool_size": 10,
        "echo_token_delay": 0.0,
        "log_level": "ERROR",  # the table on stdout, not the warnings the runs provoke
        **extra,
    }
    return make_settings(db, **values)


async def ingest(http: httpx.AsyncClient, c: TestCollection) -> Loaded:
    user = await register(http)
    response = await http.post("/api/collections", json={"name": c.name}, headers=user.headers)
    response.raise_for_status()
    loaded = Loaded(c, user, response.json()["id"])
    semaphore = asyncio.Semaphore(8)

    async def one(doc_id: str) -> None:
        name = f"{doc_id}.txt"
        async with semaphore:
            uploaded = await http.post(
                "/api/files",
                files={"file": (name, c.content(doc_id).encode(), "text/plain")},
                headers=user.headers,
            )
            uploaded.raise_for_status()
            added = await http.post(
                f"/api/collections/{loaded.collection_id}/files",
                json={"file_id": uploaded.json()["id"]},
                headers=user.headers,
            )
            added.raise_for_status()
        loaded.file_doc[name] = doc_id

    await asyncio.gather(*(one(d) for d in c.docs))
    while True:
        response = await http.get(f"/api/collections/{loaded.collection_id}", headers=user.headers)
        body = response.json()
        if body["ready_count"] >= body["file_count"]:
            break
        files = await http.get(
            f"/api/collections/{loaded.collection_id}/files", headers=user.headers
        )
        failed = [f for f in files.json() if f["status"] == "failed"]
        if failed:
            raise RuntimeError(f"ingestion failed: {failed[0]}")
        await asyncio.sleep(0.5)
    return loaded


async def rankings(
    http: httpx.AsyncClient, loaded: Loaded, queries: dict[str, str] | None = None
) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    semaphore = asyncio.Semaphore(4)

    async def one(q: str, text: str) -> None:
        async with semaphore:
            response = await http.get(
                f"/api/collections/{loaded.collection_id}/search",
                params={"q": text[:1000], "limit": K},
                headers=loaded.user.headers,
            )
        response.raise_for_status()
        seen: list[str] = []
        for hit in response.json()["hits"]:
            doc = loaded.file_doc[hit["name"]]
            if doc not in seen:
                seen.append(doc)
        out[q] = seen

    await asyncio.gather(*(one(q, t) for q, t in (queries or loaded.collection.queries).items()))
    return out


async def rewritten_rankings(
    http: httpx.AsyncClient, loaded: Loaded, queries: dict[str, str]
) -> tuple[dict[str, list[str]], dict[str, str]]:
    """Each query sent as a follow-up in a chat over the collection (its first message
    "Hello"): the sources the reply retrieved (RAG_TOP_K of them), and the query it searched."""
    out: dict[str, list[str]] = {}
    searched: dict[str, str] = {}
    semaphore = asyncio.Semaphore(4)
    headers = {**loaded.user.headers, "Accept": "text/event-stream"}

    async def one(q: str, text: str) -> None:
        async with semaphore:
            chat = await http.post(
                "/api/chats",
                json={"collection_ids": [loaded.collection_id]},
                headers=loaded.user.headers,
            )
            chat.raise_for_status()
            path = f"/api/chats/{chat.json()['id']}/messages"
            for content in ("Hello", text[:1000]):
                async with http.stream(
                    "POST", path, json={"content": content}, headers=headers
                ) as r:
                    events = await collect_sse(r)
        sources = next(e.data for e in events if e.event == "sources")
        docs: list[str] = []
        for source in sources["sources"]:
            doc = loaded.file_doc[source["name"]]
            if doc not in docs:
                docs.append(doc)
        out[q], searched[q] = docs, sources["query"]

    await asyncio.gather(*(one(q, t) for q, t in queries.items()))
    return out, searched


async def rewrite_rows(
    db: TestDatabase,
    fake: FakeUpstream,
    args: argparse.Namespace,
    tmp: Path,
    loaded: list[Loaded],
    embedding: str,
) -> list[tuple[str, str, str, tuple[float, float, float]]]:
    """RAG_QUERY_REWRITE on and off with the stub model (the fake upstream, which answers
    "Hello, world!" to everything, the rewrite included) and the echo model (never asked to
    rewrite), on --rewrite-queries follow-ups per collection; and what searching the stub's
    rewrite itself would find (the rewrite before Parley's grounding check)."""
    rows: list[tuple[str, str, str, tuple[float, float, float]]] = []
    models = {"stub": {}, "echo": {"llm_base_url": None, "llm_model": None}}
    for item in loaded:
        c = item.collection
        sample = dict(list(c.queries.items())[: args.rewrite_queries])
        sampled = TestCollection(c.name, c.docs, sample, c.qrels)
        for model, extra in models.items():
            for rewrite in (False, True):
                configured = settings_for(
                    db, fake, args, tmp, rag_top_k=K, rag_query_rewrite=rewrite, **extra
                )
                async with serving(configured) as (_app, http):
                    ranked, searched = await rewritten_rankings(http, item, sample)
                    label = f"follow-up, {model} model, rewrite {'on' if rewrite else 'off'}"
                    rows.append((c.name, embedding, label, mean_scores(ranked, sampled)))
                    if model == "stub" and rewrite:
                        kept = sum(1 for q, t in sample.items() if searched[q] == t[:1000])
                        print(
                            f"  {c.name}: {kept}/{len(sample)} stub rewrites not used",
                            file=sys.stderr,
                        )
                        answer = "Hello, world!"
                        raw = await rankings(http, item, {q: answer for q in sample})
                        label = "follow-up, stub model's rewrite searched as is"
                        rows.append((c.name, embedding, label, mean_scores(raw, sampled)))
    return rows


@asynccontextmanager
async def database(kind: str, tmp: Path) -> AsyncIterator[TestDatabase]:
    if kind == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp / 'quality.db'}"
        await asyncio.to_thread(migrate, url)
        yield TestDatabase(url, "sqlite")
        return
    import pgserver

    root = Path(tempfile.mkdtemp(prefix="pq-", dir="/tmp"))
    server = pgserver.get_server(root, cleanup_mode="delete")
    try:
        server.psql('CREATE DATABASE "quality";')
        url = f"postgresql+asyncpg://postgres@/quality?host={root}"
        await asyncio.to_thread(migrate, url)
        yield TestDatabase(url, "postgres")
    finally:
        server.cleanup()


FUSIONS: dict[str, dict[str, Any]] = {
    "full text": {"rag_fusion": "rrf", "rag_fusion_vector_weight": 0.0},
    "vector": {"rag_fusion": "rrf", "rag_fusion_vector_weight": 1.0},
    "hybrid (default)": {},
}
GRID: dict[str, dict[str, Any]] = {
    "rrf 0.5 (plain RRF, before)": {"rag_fusion": "rrf", "rag_fusion_vector_weight": 0.5},
    "rrf 0.3": {"rag_fusion": "rrf", "rag_fusion_vector_weight": 0.3},
    "rrf 0.7": {"rag_fusion": "rrf", "rag_fusion_vector_weight": 0.7},
    "convex 0.3": {"rag_fusion": "convex", "rag_fusion_vector_weight": 0.3},
    "convex 0.5": {"rag_fusion": "convex", "rag_fusion_vector_weight": 0.5},
    "convex 0.7": {"rag_fusion": "convex", "rag_fusion_vector_weight": 0.7},
    "gated 0.5, gate 1.5": {"rag_fusion": "gated", "rag_fusion_vector_weight": 0.5},
    "gated 0.7, gate 1.0": {"rag_fusion": "gated", "rag_fusion_gate": 1.0},
    "gated 0.7, gate 1.3": {"rag_fusion": "gated", "rag_fusion_gate": 1.3},
}


async def run_embedding(
    embedding: str, args: argparse.Namespace, collections: list[TestCollection], judge: Judge
) -> list[tuple[str, str, str, tuple[float, float, float]]]:
    rows: list[tuple[str, str, str, tuple[float, float, float]]] = []
    with tempfile.TemporaryDirectory(prefix="parley-quality-") as tmp_name:
        tmp = Path(tmp_name)
        async with run_fake_upstream() as fake, database(args.db, tmp) as db:
            fake.state.embedding_dimensions = args.dimensions
            fake.state.embedder = judge.embed if embedding == "oracle" else None
            fake.state.rerank_scorer = judge.rerank
            started = time.perf_counter()
            async with serving(settings_for(db, fake, args, tmp)) as (_app, http):
                loaded = [await ingest(http, c) for c in collections]
            print(
                f"[{embedding}] ingested {sum(len(c.docs) for c in collections)} documents in "
                f"{time.perf_counter() - started:.0f} s",
                file=sys.stderr,
            )
            configs = dict(FUSIONS)
            if args.grid:
                configs.update(GRID)
            configs["hybrid + reranker"] = {"rerank_base_url": fake.base_url}
            if args.rewrite_queries and embedding == args.embeddings.split(",")[0].strip():
                rows += await rewrite_rows(db, fake, args, tmp, loaded, embedding)
            for label, extra in configs.items():
                async with serving(settings_for(db, fake, args, tmp, **extra)) as (_app, http):
                    for item in loaded:
                        result = mean_scores(await rankings(http, item), item.collection)
                        rows.append((item.collection.name, embedding, label, result))
                        print(
                            f"  {item.collection.name} {embedding} {label}: {result}",
                            file=sys.stderr,
                        )
    return rows


def table(
    rows: list[tuple[str, str, str, tuple[float, float, float]]],
    bm25: dict[str, tuple[float, float, float]],
) -> str:
    lines = [
        "| collection | embeddings | ranking | nDCG@10 | recall@10 | MRR@10 | nDCG vs BM25 |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, reference in bm25.items():
        lines.append(
            f"| {name} | | Okapi BM25 (rank-bm25) | {reference[0]:.3f} | {reference[1]:.3f} "
            f"| {reference[2]:.3f} | 1.00x |"
        )
        for collection, embedding, label, (ndcg, recall, mrr) in rows:
            if collection == name:
                ratio = ndcg / reference[0] if reference[0] else 0.0
                lines.append(
                    f"| {name} | {embedding} | {label} | {ndcg:.3f} | {recall:.3f} | {mrr:.3f} "
                    f"| {ratio:.2f}x |"
                )
    return "\n".join(lines)


def targets(
    rows: list[tuple[str, str, str, tuple[float, float, float]]],
    bm25: dict[str, tuple[float, float, float]],
) -> str:
    got = {(c, e, label): r[0] for c, e, label, r in rows}
    lines = ["| target | collection | measured | |", "|---|---|---|---|"]

    def line(target: str, name: str, measured: str, ok: bool) -> None:
        lines.append(f"| {target} | {name} | {measured} | {'met' if ok else '**missed**'} |")

    for name, reference in bm25.items():
        for e in ("weak", "oracle"):
            text, vec = got.get((name, e, "full text")), got.get((name, e, "vector"))
            hyb, rr = (
                got.get((name, e, "hybrid (default)")),
                got.get((name, e, "hybrid + reranker")),
            )
            if text is None or vec is None or hyb is None or rr is None:
                continue
            if e == "weak":
                line(
                    "full text ≥ 0.95x BM25 nDCG@10",
                    name,
                    f"{text / reference[0]:.2f}x",
                    text >= 0.95 * reference[0],
                )
                line(
                    "hybrid ≥ full text, weak vectors",
                    name,
                    f"{hyb:.3f} vs {text:.3f}",
                    hyb >= text,
                )
            else:
                best = max(text, vec)
                line(
                    "hybrid ≥ max(full text, vector), good vectors",
                    name,
                    f"{hyb:.3f} vs {best:.3f}",
                    hyb >= best,
                )
            line(
                f"reranker ≥ +5 % over hybrid ({e})",
                name,
                f"{(rr / hyb - 1) * 100:+.1f} %",
                rr >= 1.05 * hyb,
            )
    return "\n".join(lines)


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--collection", action="append", type=Path, help="a BEIR-format directory (repeatable)"
    )
    parser.add_argument(
        "--queries", type=int, default=None, help="judged queries per collection at most (a sample)"
    )
    parser.add_argument("--db", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--embeddings", default="weak,oracle", help="weak, oracle, or both")
    parser.add_argument(
        "--embedding-url",
        default=None,
        help="a real embedding endpoint (/v1 URL) instead of the fake's",
    )
    parser.add_argument("--embedding-model", default="bench-embed")
    parser.add_argument("--dimensions", type=int, default=DIMENSIONS)
    parser.add_argument("--noise", type=float, default=0.8, help="the oracle embedding's noise")
    parser.add_argument(
        "--rerank-noise", type=float, default=0.2, help="the reranker double's noise"
    )
    parser.add_argument("--grid", action="store_true", help="also every fusion candidate")
    parser.add_argument(
        "--rewrite-queries",
        type=int,
        default=50,
        help="follow-ups per collection for RAG_QUERY_REWRITE (0: skip), first embedding only",
    )
    args = parser.parse_args()
    collections = [load(d, args.queries) for d in (args.collection or DEFAULT_COLLECTIONS)]
    judge = Judge(collections, args.noise, args.rerank_noise)
    bm25 = {c.name: mean_scores(bm25_rankings(c), c) for c in collections}
    rows = []
    for embedding in args.embeddings.split(","):
        rows += await run_embedding(embedding.strip(), args, collections, judge)
    sizes = ", ".join(
        f"{c.name}: {len(c.docs)} documents, {len(c.queries)} judged queries" for c in collections
    )
    print(f"{args.db}; {sizes}; search limit {K}; Parley's defaults otherwise.\n")
    print(table(rows, bm25))
    print()
    print(targets(rows, bm25))


if __name__ == "__main__":
    asyncio.run(main())
