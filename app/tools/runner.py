"""One tool call run: what the model asked checked, the tool called within its time, the result
cut to TOOL_RESULT_MAX_CHARS. Every failure (an unknown tool, arguments the schema refuses, the
tool's own error, a timeout, a server that is down) is a result with `is_error` that the model
reads and can act on, never a failed reply."""

import asyncio
import json
import logging
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError

from app.core.config import Settings
from app.knowledge.parts import KnowledgeParts
from app.tools.builtin import knowledge_search
from app.tools.catalog import KNOWLEDGE_SEARCH_ID, Tool, ToolCatalog
from app.tools.mcp import ToolOutput

logger = logging.getLogger("parley.tools")


@dataclass(frozen=True)
class ToolContext:
    """Whose call it is: what the built-in tools act on."""

    user_id: uuid.UUID
    collection_ids: Sequence[uuid.UUID] = ()


@dataclass
class ToolResult:
    content: str
    is_error: bool
    duration_ms: int
    # The passages a knowledge search found (its sources, as a reply's).
    sources: list[dict[str, Any]] = field(default_factory=list)


class ToolRunner:
    def __init__(
        self,
        catalog: ToolCatalog,
        settings: Settings,
        knowledge: Callable[[], KnowledgeParts | None],
    ) -> None:
        self.catalog = catalog
        self.settings = settings
        self.knowledge = knowledge
        self._validators: dict[str, Draft202012Validator | None] = {}

    def arguments_of(self, tool: Tool, raw: str) -> dict[str, Any] | str:
        """The call's arguments, or why they are refused (a message the model reads)."""
        try:
            arguments = json.loads(raw) if raw.strip() else {}
        except json.JSONDecodeError as exc:
            return f"The arguments are not valid JSON ({exc.msg} at character {exc.pos})."
        if not isinstance(arguments, dict):
            return "The arguments must be a JSON object."
        validator = self._validator(tool)
        if validator is not None:
            errors = sorted(validator.iter_errors(arguments), key=lambda e: list(e.path))
            if errors:
                described = "; ".join(
                    f"{'.'.join(map(str, e.path)) or 'arguments'}: {e.message}" for e in errors[:3]
                )
                return f"The arguments do not match the tool's schema: {described}"
        return arguments

    def _validator(self, tool: Tool) -> Draft202012Validator | None:
        if tool.id not in self._validators:
            try:
                Draft202012Validator.check_schema(tool.input_schema)
                self._validators[tool.id] = Draft202012Validator(tool.input_schema)
            except SchemaError:
                logger.warning("a tool's input schema is invalid", extra={"tool": tool.id})
                self._validators[tool.id] = None  # the server checks its own arguments
        return self._validators[tool.id]

    async def run(
        self, tool: Tool | None, name: str, raw_arguments: str, context: ToolContext
    ) -> ToolResult:
        started = time.perf_counter()
        sources: list[dict[str, Any]] = []
        if tool is None:
            output = ToolOutput(f"There is no tool named {name!r} in this chat.", True)
        else:
            arguments = self.arguments_of(tool, raw_arguments)
            if isinstance(arguments, str):
                output = ToolOutput(arguments, True)
            else:
                output, sources = await self._call(tool, arguments, context)
        return ToolResult(
            content=self._cut(output.text),
            is_error=output.is_error,
            duration_ms=round((time.perf_counter() - started) * 1000),
            sources=sources,
        )

    async def _call(
        self, tool: Tool, arguments: dict[str, Any], context: ToolContext
    ) -> tuple[ToolOutput, list[dict[str, Any]]]:
        limit = self.settings.tool_timeout_seconds
        if not tool.builtin:
            limit = self.catalog.clients[tool.server].config.timeout_seconds or limit
        try:
            async with asyncio.timeout(limit):
                if tool.id == KNOWLEDGE_SEARCH_ID:
                    return await knowledge_search(
                        self.knowledge(),
                        user_id=context.user_id,
                        collection_ids=context.collection_ids,
                        arguments=arguments,
                    )
                return await self.catalog.clients[tool.server].call(tool.name, arguments), []
        except TimeoutError:
            return ToolOutput(f"The tool did not answer within {limit:g} seconds.", True), []
        except Exception as exc:
            logger.warning("a tool call failed", extra={"tool": tool.id, "error": repr(exc)})
            reason = str(exc) or type(exc).__name__
            return ToolOutput(f"The tool could not be reached: {reason[:300]}", True), []

    def _cut(self, text: str) -> str:
        limit = self.settings.tool_result_max_chars
        if len(text) <= limit:
            return text
        return (
            text[:limit]
            + f"\n[The result was cut: it had {len(text):,} characters, the first {limit:,} "
            "are shown.]"
        )
