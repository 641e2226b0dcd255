from typing import Annotated, Any

from pydantic import BaseModel, Field, StrictBool, StringConstraints

MAX_TOOLS_PER_CHAT = 32

ToolId = Annotated[str, StringConstraints(min_length=1, max_length=200, pattern=r"^[^\x00]+$")]
ToolIds = Annotated[
    list[ToolId],
    Field(
        max_length=MAX_TOOLS_PER_CHAT,
        description="Ids of tools (GET /api/tools) the model may call, at most 32.",
    ),
]


class ToolRead(BaseModel):
    id: str = Field(description="`server.tool`: what chats name in `tool_ids`.")
    name: str = Field(description="The tool's own name.")
    model_name: str = Field(
        description="The name the model sees (`server__tool` when servers share a name)."
    )
    server: str = Field(description="The MCP server (`parley` for the built-in tools).")
    description: str
    input_schema: dict[str, Any]
    needs_approval: bool = Field(description="Each call waits for the user's approval.")
    reachable: bool = Field(description="Whether its server answered the last discovery.")
    enabled: bool = Field(description="Offered to chats (admins switch tools off).")


class ServerRead(BaseModel):
    name: str
    reachable: bool
    error: str | None = Field(description="Why the last discovery failed, when it did.")
    enabled: bool
    tools: int


class ToolList(BaseModel):
    tools: list[ToolRead]
    servers: list[ServerRead]


class ToolSwitch(BaseModel):
    enabled: StrictBool
