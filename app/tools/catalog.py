"""The tools there are, which of them are enabled, and the names the model sees them by.

A tool's id is `server.tool`: the MCP server's name from MCP_SERVERS and the tool's own name
(`parley.knowledge_search` for the built-in one). The model sees a tool under its own name;
names that several servers use get the server's name as a prefix, `server__tool`.

Each worker discovers the servers' tools at start and every MCP_REFRESH_SECONDS; a server that
is down is reported (`reachable: false`, its last known tools kept), never fatal. Admins switch
tools or whole servers off; the switches are in the database and reach every worker at once
(app/core/invalidation.py)."""

import asyncio
import logging
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from app.core.config import McpServer, Settings
from app.core.db import Database
from app.core.invalidation import Invalidations
from app.core.uow import UnitOfWork, unit_of_work
from app.tools.errors import UnknownTool
from app.tools.mcp import CONNECT_SECONDS, McpServerClient
from app.tools.repository import ToolSettingRepository

logger = logging.getLogger("parley.tools")

BUILTIN_SERVER = "parley"
KNOWLEDGE_SEARCH = "knowledge_search"
KNOWLEDGE_SEARCH_ID = f"{BUILTIN_SERVER}.{KNOWLEDGE_SEARCH}"
# The invalidation topic of an admin's switch: value "<tool id>".
TOOL_SETTINGS_TOPIC = "tool-settings"

KNOWLEDGE_SEARCH_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "query": {
            "type": "string",
            "minLength": 1,
            "maxLength": 500,
            "description": "What to look for, as a standalone search query.",
        },
        "top_k": {
            "type": "integer",
            "minimum": 1,
            "maximum": 20,
            "description": "How many passages to return (default 5).",
        },
    },
    "required": ["query"],
    "additionalProperties": False,
}


@dataclass(frozen=True)
class Tool:
    id: str
    server: str
    name: str  # the tool's own (MCP) name
    description: str
    input_schema: dict[str, Any]
    needs_approval: bool
    # The name the model sees: `name`, or `server__name` where servers share a name.
    model_name: str = ""

    @property
    def builtin(self) -> bool:
        return self.server == BUILTIN_SERVER

    def spec(self) -> dict[str, Any]:
        """The tool as an OpenAI `tools` entry."""
        return {
            "type": "function",
            "function": {
                "name": self.model_name,
                "description": self.description,
                "parameters": self.input_schema or {"type": "object", "properties": {}},
            },
        }


@dataclass
class ServerState:
    name: str
    reachable: bool = False
    error: str | None = None
    tools: tuple[Tool, ...] = ()


def _needs_approval(config: McpServer, tool: str) -> bool:
    if isinstance(config.approve, list):
        return tool in config.approve
    return config.approve == "always"


_NOT_IN_A_NAME = re.compile(r"[^A-Za-z0-9_-]")


def _model_safe(name: str) -> str:
    """A function name as the OpenAI API takes it: [A-Za-z0-9_-], at most 64 characters."""
    return _NOT_IN_A_NAME.sub("_", name)[:64]


class ToolCatalog:
    def __init__(
        self,
        settings: Settings,
        db: Database,
        invalidations: Invalidations,
        *,
        knowledge_search: bool,
    ) -> None:
        self.db = db
        self.settings = settings
        self.invalidations = invalidations
        self.clients = {
            name: McpServerClient(name, config) for name, config in settings.mcp_servers.items()
        }
        self.servers = {name: ServerState(name) for name in self.clients}
        self.builtins: tuple[Tool, ...] = ()
        if knowledge_search:
            self.builtins = (
                Tool(
                    id=KNOWLEDGE_SEARCH_ID,
                    server=BUILTIN_SERVER,
                    name=KNOWLEDGE_SEARCH,
                    description=(
                        "Search the documents of this chat's knowledge collections. Returns the "
                        "best matching passages with their source names; search again with a "
                        "better query if they do not answer the question."
                    ),
                    input_schema=KNOWLEDGE_SEARCH_SCHEMA,
                    needs_approval=False,
                ),
            )
        self.disabled: set[str] = set()
        self._by_id: dict[str, Tool] = {}
        self._by_model_name: dict[str, Tool] = {}
        self._index()
        invalidations.subscribe(TOOL_SETTINGS_TOPIC, lambda _value: self._reload_soon())
        self._reloading: asyncio.Task[None] | None = None

    # --- discovery ------------------------------------------------------------------------

    async def refresh(self) -> None:
        """Discovers every server's tools (at once, each bounded) and reads the switches."""
        await asyncio.gather(*(self._discover(name) for name in self.clients))
        await self._reload_logged()  # a database that is down keeps the switches it had

    async def _discover(self, name: str) -> None:
        client, state = self.clients[name], self.servers[name]
        limit = client.config.timeout_seconds or CONNECT_SECONDS
        try:
            async with asyncio.timeout(limit):
                listed = await client.list_tools()
        except Exception as exc:  # any failure: the server is reported down, never fatal
            reason = f"{type(exc).__name__}: {exc}"[:300] if str(exc) else type(exc).__name__
            if state.reachable or state.error is None:
                logger.warning(
                    "an MCP server cannot be reached", extra={"server": name, "error": reason}
                )
            state.reachable, state.error = False, reason
            return
        config = client.config
        state.tools = tuple(
            Tool(
                id=f"{name}.{tool.name}",
                server=name,
                name=tool.name,
                description=tool.description,
                input_schema=tool.input_schema,
                needs_approval=_needs_approval(config, tool.name),
            )
            for tool in listed
        )
        if not state.reachable:
            logger.info("MCP server discovered", extra={"server": name, "tools": len(listed)})
        state.reachable, state.error = True, None
        self._index()

    async def reload_switches(self) -> None:
        async with unit_of_work(self.db) as uow:
            self.disabled = await uow.get(ToolSettingRepository).disabled()

    def _reload_soon(self) -> None:
        """Another worker (or this one) switched a tool: read the switches again."""
        if self._reloading is None or self._reloading.done():
            self._reloading = asyncio.get_running_loop().create_task(self._reload_logged())

    async def _reload_logged(self) -> None:
        try:
            await self.reload_switches()
        except Exception as exc:
            logger.warning("could not read the tool switches", extra={"error": repr(exc)})

    def _index(self) -> None:
        """Gives every tool the name the model sees it by."""
        tools = [*self.builtins, *(t for state in self.servers.values() for t in state.tools)]
        counts = Counter(_model_safe(tool.name) for tool in tools)
        named = [
            replace(
                tool,
                model_name=_model_safe(tool.name)
                if counts[_model_safe(tool.name)] == 1
                else _model_safe(f"{tool.server}__{tool.name}"),
            )
            for tool in tools
        ]
        self._by_id = {tool.id: tool for tool in named}
        self._by_model_name = {tool.model_name: tool for tool in named}

    # --- what is offered ------------------------------------------------------------------

    def all(self) -> list[Tool]:
        return list(self._by_id.values())

    def enabled(self, tool: Tool) -> bool:
        return tool.id not in self.disabled and tool.server not in self.disabled

    def reachable(self, tool: Tool) -> bool:
        return tool.builtin or self.servers[tool.server].reachable

    def get(self, tool_id: str) -> Tool | None:
        return self._by_id.get(tool_id)

    def known_id(self, tool_id: str) -> bool:
        """A tool or a server (an admin's switch may name either)."""
        return tool_id in self._by_id or tool_id in self.servers or tool_id == BUILTIN_SERVER

    def offered(self, tool_ids: Sequence[str]) -> list[Tool]:
        """The tools of these ids that exist and are enabled, in their order."""
        found = (self._by_id.get(tool_id) for tool_id in dict.fromkeys(tool_ids))
        return [tool for tool in found if tool is not None and self.enabled(tool)]

    def check(self, tool_ids: Sequence[str]) -> list[str]:
        """The ids a chat or message asks for, each an enabled tool (else UnknownTool)."""
        unknown = [
            tool_id
            for tool_id in tool_ids
            if (tool := self._by_id.get(tool_id)) is None or not self.enabled(tool)
        ]
        if unknown:
            raise UnknownTool(f"No enabled tool has the id {', '.join(map(repr, unknown))}.")
        return list(dict.fromkeys(tool_ids))

    async def set_enabled(self, uow: UnitOfWork, tool_id: str, enabled: bool) -> None:
        """Switches a tool or server in the request's unit of work and commits it; then every
        worker reads the switches again."""
        await uow.get(ToolSettingRepository).set_enabled(tool_id, enabled)
        await uow.commit()
        (self.disabled.discard if enabled else self.disabled.add)(tool_id)
        await self.invalidations.publish(TOOL_SETTINGS_TOPIC, tool_id)

    async def close(self) -> None:
        if self._reloading is not None:
            self._reloading.cancel()
        for client in self.clients.values():
            await client.close()
