from app.core.errors import AppError


class UnknownTool(AppError):
    status_code = 422
    code = "unknown_tool"
    message = "No enabled tool has this id (GET /api/tools lists them)."


class ToolNotFound(AppError):
    status_code = 404
    code = "tool_not_found"
    message = "No tool or MCP server has this id."
