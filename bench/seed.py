"""Synthetic chats and messages for the data-scale benchmark, bulk-loaded on SQLite or Postgres.

The text is drawn from a made-up vocabulary with a Zipf distribution (a few words are in most
messages, most words in very few), so that searches for common, medium and rare words behave
like searches over real conversations. Messages are inserted in time order across all chats, as
a live server would write them.
"""

import asyncio
import random
import sqlite3
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from itertools import accumulate

VOCABULARY_SIZE = 20_000
ZIPF_EXPONENT = 1.07
CONSONANTS = "bcdfghjklmnprstvz"
VOWELS = "aeiou"


@dataclass
class SeedPlan:
    chats: int = 10_000
    messages: int = 1_000_000
    big_chat_messages: int = 5_000
    seed: int = 42


@dataclass
class SeedResult:
    big_chat_id: uuid.UUID
    title_word: str
    # word -> how many messages contain it, for the search scenarios
    word_counts: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0


def make_vocabulary(rng: random.Random) -> list[str]:
    words: set[str] = set()
    while len(words) < VOCABULARY_SIZE:
        syllables = rng.randint(2, 4)
        words.add("".join(rng.choice(CONSONANTS) + rng.choice(VOWELS) for _ in range(syllables)))
    vocabulary = sorted(words)
    rng.shuffle(vocabulary)  # rank order: vocabulary[0] is the most frequent word
    return vocabulary


@dataclass
class Row:
    id: uuid.UUID
    chat_id: uuid.UUID
    parent_id: uuid.UUID | None
    depth: int
    role: str
    content: str
    created_at: datetime


def _chat_lengths(plan: SeedPlan, rng: random.Random) -> list[int]:
    others = plan.chats - 1
    remaining = plan.messages - plan.big_chat_messages
    mean = remaining / others
    lengths = [max(2, int(rng.uniform(2, 2 * mean - 2))) for _ in range(others)]
    difference = remaining - sum(lengths)
    step = 1 if difference > 0 else -1
    while difference:
        index = rng.randrange(others)
        if lengths[index] + step >= 2:
            lengths[index] += step
            difference -= step
    return [plan.big_chat_messages, *lengths]


def generate(
    plan: SeedPlan, user_id: uuid.UUID, probe_words: list[str] | None = None
) -> tuple[list[tuple[object, ...]], list[Row], SeedResult]:
    """Returns chat rows, message rows (in creation order) and facts the benchmark needs."""
    rng = random.Random(plan.seed)
    vocabulary = make_vocabulary(rng)
    cumulative = list(
        accumulate(1 / (rank + 1) ** ZIPF_EXPONENT for rank in range(len(vocabulary)))
    )
    title_words = vocabulary[50:3000]
    now = datetime.now(UTC).replace(microsecond=0)
    chats: list[tuple[object, ...]] = []
    messages: list[Row] = []
    lengths = _chat_lengths(plan, rng)
    pinned = set(rng.sample(range(1, plan.chats), 20))
    archived = set(rng.sample(range(1, plan.chats), plan.chats // 20)) - pinned
    big_chat_id = uuid.UUID(int=0)
    title_word = title_words[7]

    for index, length in enumerate(lengths):
        chat_id = uuid.uuid4()
        # The big chat is the most recently active one, so it is also on the first list page.
        start = (
            now - timedelta(minutes=length + 5)
            if index == 0
            else (now - timedelta(days=365 * rng.random(), minutes=length + 5))
        )
        words = rng.choices(vocabulary, cum_weights=cumulative, k=length * 26)
        rows: list[Row] = []
        position = 0
        parent: uuid.UUID | None = None
        for depth in range(length):
            role = "user" if depth % 2 == 0 else "assistant"
            size = rng.randint(6, 18) if role == "user" else rng.randint(20, 60)
            text = " ".join(words[position : position + size])
            position += size
            row = Row(
                uuid.uuid4(),
                chat_id,
                parent,
                depth,
                role,
                text.capitalize() + ".",
                start + timedelta(minutes=depth, seconds=rng.random() * 50),
            )
            rows.append(row)
            parent = row.id
        # Some chats have an edited question: the old version and its reply stay as a branch.
        if length >= 6 and (index == 0 or rng.random() < 0.03):
            depth = 10 if index == 0 else 2 * rng.randrange(length // 2 - 1)
            original = rows[depth]
            old = Row(
                uuid.uuid4(),
                chat_id,
                original.parent_id,
                depth,
                "user",
                "Earlier version: " + original.content,
                original.created_at - timedelta(seconds=40),
            )
            reply = Row(
                uuid.uuid4(),
                chat_id,
                old.id,
                depth + 1,
                "assistant",
                "Reply to the earlier version.",
                original.created_at - timedelta(seconds=30),
            )
            rows.extend([old, reply])
        title = " ".join(rng.choice(title_words) for _ in range(rng.randint(2, 5))).capitalize()
        if index == 0:
            big_chat_id = chat_id
        last_message_at = max(row.created_at for row in rows)
        chats.append(
            (chat_id, user_id, title, index in pinned, index in archived, start, last_message_at)
        )
        messages.extend(rows)

    messages.sort(key=lambda row: row.created_at)
    counts: dict[str, int] = {}
    for word in probe_words or []:
        counts[word] = sum(1 for row in messages if word in row.content.lower().split())
    return chats, messages, SeedResult(big_chat_id, title_word, counts)


def pick_probe_words(plan: SeedPlan) -> list[str]:
    """Words at three frequency ranks: common, medium and rare."""
    vocabulary = make_vocabulary(random.Random(plan.seed))
    return [vocabulary[5], vocabulary[400], vocabulary[12_000]]


def _message_tuple(row: Row) -> tuple[object, ...]:
    assistant = row.role == "assistant"
    return (
        row.id,
        row.chat_id,
        row.parent_id,
        row.depth,
        row.role,
        row.content,
        "complete",
        "echo" if assistant else None,
        120 if assistant else None,
        len(row.content) // 4 if assistant else None,
        False,
        None,
        None,
        180 if assistant else None,
        900 if assistant else None,
        row.created_at,
        row.created_at,
    )


CHAT_COLUMNS = (
    "id",
    "user_id",
    "title",
    "pinned",
    "archived",
    "created_at",
    "last_message_at",
    "updated_at",
    "mode",
    "mode_params",
)
MESSAGE_COLUMNS = (
    "id",
    "chat_id",
    "parent_id",
    "depth",
    "role",
    "content",
    "status",
    "model",
    "prompt_tokens",
    "completion_tokens",
    "usage_estimated",
    "error_code",
    "error_message",
    "time_to_first_token_ms",
    "duration_ms",
    "created_at",
    "updated_at",
)


def _chat_tuple(chat: tuple[object, ...]) -> tuple[object, ...]:
    return (*chat, chat[6], "chat", "{}")


def _batches(items: list[tuple[object, ...]], size: int) -> Iterator[list[tuple[object, ...]]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _sqlite_value(value: object) -> object:
    if isinstance(value, uuid.UUID):
        return value.hex  # SQLAlchemy's Uuid on SQLite: 32 hex characters
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
    return value


def load_sqlite(path: str, chats: list[tuple[object, ...]], messages: list[Row]) -> None:
    connection = sqlite3.connect(path, isolation_level=None)
    try:
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("PRAGMA synchronous=OFF")
        connection.execute("PRAGMA cache_size=-512000")
        connection.execute("BEGIN")
        chat_sql = (
            f"INSERT INTO chat ({', '.join(CHAT_COLUMNS)}) "
            f"VALUES ({', '.join('?' * len(CHAT_COLUMNS))})"
        )
        connection.executemany(
            chat_sql, ([_sqlite_value(v) for v in _chat_tuple(c)] for c in chats)
        )
        message_sql = (
            f"INSERT INTO message ({', '.join(MESSAGE_COLUMNS)}) "
            f"VALUES ({', '.join('?' * len(MESSAGE_COLUMNS))})"
        )
        connection.executemany(
            message_sql, ([_sqlite_value(v) for v in _message_tuple(m)] for m in messages)
        )
        connection.execute("COMMIT")
        connection.execute("ANALYZE")
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        connection.close()


async def load_postgres(dsn: str, chats: list[tuple[object, ...]], messages: list[Row]) -> None:
    import asyncpg

    connection = await asyncpg.connect(dsn)
    try:
        await connection.execute("SET maintenance_work_mem = '512MB'")
        # COPY into a table without its secondary indexes, then build them once: much faster
        # than maintaining a GIN index row by row. The definitions come from the migrated schema.
        definitions = await connection.fetch(
            "SELECT indexname, indexdef FROM pg_indexes "
            "WHERE tablename IN ('chat', 'message') AND indexname NOT LIKE 'pk_%'"
        )
        for index in definitions:
            await connection.execute(f'DROP INDEX "{index["indexname"]}"')
        await connection.copy_records_to_table(
            "chat", records=[_chat_tuple(c) for c in chats], columns=list(CHAT_COLUMNS)
        )
        for batch in _batches([_message_tuple(m) for m in messages], 100_000):
            await connection.copy_records_to_table(
                "message", records=batch, columns=list(MESSAGE_COLUMNS)
            )
        for index in definitions:
            await connection.execute(index["indexdef"])
        await connection.execute("VACUUM ANALYZE chat")
        await connection.execute("VACUUM ANALYZE message")
    finally:
        await connection.close()


def seed(backend: str, target: str, user_id: uuid.UUID, plan: SeedPlan | None = None) -> SeedResult:
    """Generates and loads the data set; `target` is a SQLite path or a Postgres DSN."""
    plan = plan or SeedPlan()
    started = time.perf_counter()
    chats, messages, result = generate(plan, user_id, pick_probe_words(plan))
    generated = time.perf_counter()
    if backend == "sqlite":
        load_sqlite(target, chats, messages)
    else:
        asyncio.run(load_postgres(target, chats, messages))
    result.seconds = time.perf_counter() - started
    print(
        f"seeded {len(chats)} chats and {len(messages)} messages in {result.seconds:.0f} s "
        f"(generate {generated - started:.0f} s, load {time.perf_counter() - generated:.0f} s)"
    )
    return result
