"""The MCP client: a server's tools listed, and one called, over Streamable HTTP with the
official `mcp` SDK.

Each list or call opens its own MCP session (initialize, the request, the session's end) on the
server's one HTTP client, whose connections are kept alive between them: a session never
outlives the task that opened it, so a stopped reply's call ends with it."""

import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp.types import CallToolResult, TextContent

from app.core.config import McpServer

logger = logging.getLogger("parley.tools")

# What a session's set-up (initialize) may take, apart from the call's own limit.
CONNECT_SECONDS = 10.0


@dataclass(frozen=True)
class ListedTool:
    name: str
    description: str
    input_schema: dict[str, Any]


@dataclass(frozen=True)
class ToolOutput:
    text: str
    is_error: bool


class McpServerClient:
    """One configured MCP server."""

    def __init__(self, name: str, config: McpServer) -> None:
        self.name = name
        self.config = config
        self._http: httpx.AsyncClient | None = None

    def _client(self) -> httpx.AsyncClient:
        if self._http is None or self._http.is_closed:
            headers: dict[str, str] = {}
            for header, value in self.config.headers.items():
                resolved = value if isinstance(value, str) else value.resolve()
                if resolved is None:
                    logger.warning(
                        "an MCP server's header names an unset environment variable",
                        extra={"server": self.name, "header": header},
                    )
                    continue
                headers[header] = resolved
            self._http = httpx.AsyncClient(
                headers=headers,
                timeout=httpx.Timeout(CONNECT_SECONDS, read=None),
                follow_redirects=False,
            )
        return self._http

    async def list_tools(self) -> list[ListedTool]:
        listed: list[ListedTool] = []
        async with self._session() as session:
            cursor: str | None = None
            while True:
                page = await session.list_tools(cursor)
                listed.extend(
                    ListedTool(tool.name, tool.description or "", dict(tool.inputSchema or {}))
                    for tool in page.tools
                )
                cursor = page.nextCursor
                if not cursor:
                    return listed

    async def call(self, tool: str, arguments: dict[str, Any]) -> ToolOutput:
        """Calls a tool; the caller bounds the time (cancelling ends the session)."""
        async with self._session() as session:
            result = await session.call_tool(tool, arguments)
        return ToolOutput(_text_of(result), bool(result.isError))

    @asynccontextmanager
    async def _session(self) -> AsyncIterator[ClientSession]:
        """An initialized MCP session."""
        transport = streamable_http_client(self.config.url, http_client=self._client())
        async with transport as (read, write, _), ClientSession(read, write) as session:
            await session.initialize()
            yield session

    async def close(self) -> None:
        if self._http is not None:
            await self._http.aclose()


def _text_of(result: CallToolResult) -> str:
    """The result as the model reads it: its text parts, else its structured content as JSON;
    other parts (images, resources) are named, not sent."""
    parts: list[str] = []
    for item in result.content:
        if isinstance(item, TextContent):
            parts.append(item.text)
        else:
            parts.append(f"[{item.type} content not shown]")
    if not parts and result.structuredContent is not None:
        parts.append(json.dumps(result.structuredContent, ensure_ascii=False))
    return "\n".join(parts)
