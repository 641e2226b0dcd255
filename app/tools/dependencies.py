from typing import Annotated

from fastapi import Depends
from starlette.requests import HTTPConnection

from app.tools.catalog import ToolCatalog


async def get_tool_catalog(connection: HTTPConnection) -> ToolCatalog:
    """The app's tool catalog (started with generation; app.state.tools)."""
    catalog: ToolCatalog = connection.app.state.tools
    return catalog


ToolCatalogDep = Annotated[ToolCatalog, Depends(get_tool_catalog)]
