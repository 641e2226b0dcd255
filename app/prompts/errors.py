"""The prompt library's errors."""

from app.core.errors import Conflict, NotFound


class PromptNotFound(NotFound):
    code = "prompt_not_found"
    message = "Prompt not found."


class CommandTaken(Conflict):
    code = "command_taken"
    message = "You already have a prompt with this command."
