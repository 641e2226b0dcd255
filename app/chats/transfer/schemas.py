from pydantic import BaseModel, Field


class ImportFailure(BaseModel):
    index: int = Field(description="The conversation's position in the file, from 0.")
    title: str | None = Field(description="Its title, when it has one.")
    reason: str = Field(description="Why it was not imported (nothing of it was).")


class ImportSummary(BaseModel):
    """What `POST /api/chats/import` did: 200 when every conversation was imported or already
    there, 207 when some could not be read (listed in `failures`)."""

    format: str = Field(description="chatgpt, claude, openwebui or parley.")
    conversations: int = Field(description="Conversations found in the file.")
    imported: int = Field(description="New chats made.")
    unchanged: int = Field(description="Conversations imported before, left as they are.")
    failed: int = Field(description="Conversations that could not be read.")
    messages: int = Field(description="Messages of the new chats.")
    skipped_messages: int = Field(
        description="Messages of the source left out: tool calls and output, hidden system "
        "notes, empty messages, unknown roles."
    )
    failures: list[ImportFailure] = Field(
        description="The conversations not imported, by index and title (the first 1,000)."
    )
