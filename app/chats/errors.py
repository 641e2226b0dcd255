from app.core.cursor import InvalidCursor
from app.core.errors import AppError, FieldError, NotFound


class ChatNotFound(NotFound):
    code = "chat_not_found"
    message = "Chat not found."


class MessageNotFound(NotFound):
    code = "message_not_found"
    message = "Message not found."


class InvalidModeParams(AppError):
    status_code = 422
    code = "invalid_mode_params"
    message = "The mode's parameters are invalid."


class UnknownMode(AppError):
    status_code = 422
    code = "unknown_mode"
    message = "No such mode."

    def __init__(self, name: str, known: list[str]) -> None:
        message = f"No mode named '{name}'; available: {', '.join(known)}."
        super().__init__(
            message,
            details=[FieldError(field="body.mode", message=message, type="unknown_mode")],
        )


class MessageNotEditable(AppError):
    status_code = 422
    code = "message_not_editable"
    message = "Only user messages can be edited."


class MessageNotRegenerable(AppError):
    status_code = 422
    code = "message_not_regenerable"
    message = "Only replies, or the user messages they answer, can be regenerated."


__all__ = ["InvalidCursor"]
