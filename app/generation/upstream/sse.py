"""Reading an upstream's reply stream: Server-Sent Events lines carrying OpenAI chunks.

Real upstreams differ from the OpenAI reference: comment lines (`: ping`), CRLF line ends and
fields other than `data`; vLLM leaves out null fields; LiteLLM sends usage alongside choices;
errors arrive as frames after the 200 in two shapes. These functions read every one of them.
"""

import json
from collections.abc import AsyncGenerator
from typing import Any

import httpx

from app.generation.errors import UpstreamProtocolError, UpstreamStreamError
from app.generation.upstream.errors import message_from_json, sanitise_upstream_message
from app.generation.upstream.types import ToolCallDelta, Usage


async def sse_lines(response: httpx.Response) -> AsyncGenerator[str, None]:
    """The body's lines, split on \n, \r\n and \r alike, as SSE wants, and read as UTF-8 (the
    only encoding SSE allows). httpx's aiter_lines does the same through two more layers of
    generators and decoders; this runs for every token of every reply."""
    pending = b""
    async for chunk in response.aiter_bytes():
        lines = (pending + chunk).splitlines() if pending else chunk.splitlines()
        # A chunk cut mid-line leaves its last piece for the next one. (A \r\n cut between the
        # two makes an extra blank line, which SSE reads as an event boundary and so do we.)
        pending = b"" if chunk.endswith((b"\n", b"\r")) or not lines else lines.pop()
        for line in lines:
            yield line.decode("utf-8", "replace")
    if pending:
        yield pending.decode("utf-8", "replace")


def parse_chunk(data: str) -> dict[str, Any]:
    """The JSON object of one `data:` line."""
    try:
        chunk = json.loads(data)
    except ValueError as exc:
        raise UpstreamProtocolError("The model server sent a chunk that is not JSON.") from exc
    if not isinstance(chunk, dict):
        raise UpstreamProtocolError("The model server sent a chunk that is not a JSON object.")
    return chunk


def raise_if_error_frame(chunk: dict[str, Any]) -> None:
    # vLLM: {"error": {...}}; older vLLM: {"object": "error", "message": ...}; LiteLLM like vLLM
    # but maybe without [DONE]. Whatever follows, an error frame ends the reply.
    if chunk.get("error") is not None or chunk.get("object") == "error":
        message = message_from_json(chunk) or "no details given"
        raise UpstreamStreamError(
            f"The model server failed mid-reply: {sanitise_upstream_message(message)}"
        )


def usage_of(chunk: dict[str, Any]) -> Usage | None:
    # Usually its own chunk with empty choices (OpenAI, vLLM), but LiteLLM sends it alongside
    # choices: take it from wherever it is.
    usage = chunk.get("usage")
    if not isinstance(usage, dict):
        return None
    prompt, completion = usage.get("prompt_tokens"), usage.get("completion_tokens")
    if not isinstance(prompt, int) or not isinstance(completion, int):
        raise UpstreamProtocolError("The model server sent usage without token counts.")
    return Usage(prompt_tokens=prompt, completion_tokens=completion)


def choice_of(chunk: dict[str, Any]) -> tuple[str, str | None]:
    """The text and finish reason of the first choice; vLLM leaves out fields that are null."""
    choices = chunk.get("choices")
    if choices is None or choices == []:
        return "", None
    if not isinstance(choices, list) or not isinstance(choices[0], dict):
        raise UpstreamProtocolError("The model server sent a chunk with malformed choices.")
    choice = choices[0]
    delta = choice.get("delta") or {}
    if not isinstance(delta, dict):
        raise UpstreamProtocolError("The model server sent a chunk with a malformed delta.")
    # `reasoning_content` (thinking models) is deliberately not part of the reply text.
    content = delta.get("content")
    if content is not None and not isinstance(content, str):
        raise UpstreamProtocolError("The model server sent non-text content.")
    reason = choice.get("finish_reason")
    return content or "", str(reason) if reason is not None else None


def tool_calls_of(chunk: dict[str, Any]) -> list[ToolCallDelta]:
    """The tool-call pieces in the first choice's delta, relayed as they came."""
    choices = chunk.get("choices")
    if not choices or not isinstance(choices, list) or not isinstance(choices[0], dict):
        return []
    delta = choices[0].get("delta")
    calls = delta.get("tool_calls") if isinstance(delta, dict) else None
    if not calls:
        return []
    if not isinstance(calls, list):
        raise UpstreamProtocolError("The model server sent malformed tool calls.")
    found: list[ToolCallDelta] = []
    for position, call in enumerate(calls):
        if not isinstance(call, dict):
            raise UpstreamProtocolError("The model server sent a malformed tool call.")
        function = call.get("function") or {}
        if not isinstance(function, dict):
            raise UpstreamProtocolError("The model server sent a malformed tool call.")
        index = call.get("index", position)
        arguments = function.get("arguments") or ""
        name, call_id = function.get("name"), call.get("id")
        if not isinstance(index, int) or not isinstance(arguments, str):
            raise UpstreamProtocolError("The model server sent a malformed tool call.")
        found.append(
            ToolCallDelta(
                index=index,
                id=str(call_id) if call_id is not None else None,
                name=str(name) if name is not None else None,
                arguments=arguments,
            )
        )
    return found
