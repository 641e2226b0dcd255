"""The built-in tools: `knowledge_search`, the chat's collections searched with the model's own
query, by the same retrieval as a reply's (app/knowledge/retrieval.py)."""

import uuid
from collections.abc import Sequence
from typing import Any

from app.knowledge.parts import KnowledgeParts
from app.tools.mcp import ToolOutput

DEFAULT_TOP_K = 5


async def knowledge_search(
    knowledge: KnowledgeParts | None,
    *,
    user_id: uuid.UUID,
    collection_ids: Sequence[uuid.UUID],
    arguments: dict[str, Any],
) -> tuple[ToolOutput, list[dict[str, Any]]]:
    """The passages found, as the model reads them, and their sources (as a reply's)."""
    if knowledge is None:
        return ToolOutput("Knowledge search is not available on this server.", True), []
    if not collection_ids:
        return ToolOutput("This chat has no knowledge collections to search.", True), []
    retrieved = await knowledge.retriever.retrieve(
        user_id=user_id,
        collection_ids=collection_ids,
        question=str(arguments["query"]),
        top_k=int(arguments.get("top_k") or DEFAULT_TOP_K),
    )
    if not retrieved.hits:
        return ToolOutput(f"No passages match {retrieved.query!r}.", False), []
    passages = []
    for number, hit in enumerate(retrieved.hits, start=1):
        where = f", page {hit.page}" if hit.page is not None else ""
        if hit.section:
            where += f", section “{hit.section}”"
        passages.append(f"[{number}] {hit.name}{where}\n{hit.text}")
    sources = [source.model_dump(mode="json") for source in retrieved.sources()]
    return ToolOutput("\n\n".join(passages), False), sources
