"""GET /api/tools (what chats may name in `tool_ids`) and the admins' switches."""

from fastapi import APIRouter

from app.auth.dependencies import CurrentAdmin, CurrentUser
from app.auth.errors import CsrfFailed
from app.core.deps import UnitOfWorkDep
from app.core.errors import Forbidden, Unauthorized, error_responses
from app.tools.catalog import ToolCatalog
from app.tools.dependencies import ToolCatalogDep
from app.tools.errors import ToolNotFound
from app.tools.schemas import ServerRead, ToolList, ToolRead, ToolSwitch

router = APIRouter(tags=["tools"])


def _listing(catalog: ToolCatalog, *, everything: bool) -> ToolList:
    tools = [
        ToolRead(
            id=tool.id,
            name=tool.name,
            model_name=tool.model_name,
            server=tool.server,
            description=tool.description,
            input_schema=tool.input_schema,
            needs_approval=tool.needs_approval,
            reachable=catalog.reachable(tool),
            enabled=catalog.enabled(tool),
        )
        for tool in catalog.all()
        if everything or catalog.enabled(tool)
    ]
    servers = [
        ServerRead(
            name=state.name,
            reachable=state.reachable,
            error=state.error if everything else None,
            enabled=state.name not in catalog.disabled,
            tools=len(state.tools),
        )
        for state in catalog.servers.values()
        if everything or state.name not in catalog.disabled
    ]
    return ToolList(tools=tools, servers=servers)


@router.get(
    "/api/tools",
    response_model=ToolList,
    summary="The tools chats may use",
    responses=error_responses(Unauthorized),
)
async def list_tools(user: CurrentUser, catalog: ToolCatalogDep) -> ToolList:
    """The enabled tools, with their servers' reachability (admins also see those switched
    off, and why a server is down)."""
    return _listing(catalog, everything=user.role == "admin")


@router.patch(
    "/api/admin/tools/{tool_id}",
    response_model=ToolList,
    summary="Switch a tool or a whole MCP server on or off",
    responses=error_responses(Unauthorized, Forbidden, CsrfFailed, ToolNotFound),
)
async def switch_tool(
    tool_id: str,
    body: ToolSwitch,
    admin: CurrentAdmin,
    catalog: ToolCatalogDep,
    uow: UnitOfWorkDep,
) -> ToolList:
    """`tool_id` is `server.tool`, or a server's name for all its tools (`parley` for the
    built-in ones). A tool switched off is no longer offered to any chat, at once on every
    worker; chats keep naming it, and get it back when it is switched on again."""
    if not catalog.known_id(tool_id):
        raise ToolNotFound()
    await catalog.set_enabled(uow, tool_id, body.enabled)
    return _listing(catalog, everything=True)
