"""Tools the model may call in a chat reply, run by Parley on the server (docs/tools.md).

- catalog.py   the tools there are: MCP servers' (discovered at start and every
               MCP_REFRESH_SECONDS) and the built-in ones; which are enabled; the names the model
               sees them by
- mcp.py       the MCP client: listing a server's tools and calling one, over Streamable HTTP
- builtin.py   the built-in `knowledge_search`
- runner.py    one call run: its arguments checked against the tool's schema, its time limit, its
               result cut to size; every failure a result the model sees
- router.py    GET /api/tools, PATCH /api/admin/tools/{tool_id}

The loop that offers the tools to the model and runs its calls is a stage of the reply
pipeline: app/generation/pipeline/stages/tools.py.
"""
