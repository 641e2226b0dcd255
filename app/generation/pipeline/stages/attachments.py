"""Files in the prompt: the new message's checked and read before anything is stored, then every
message's attachments placed in its turn; images are read only in the reply's task, just before
the upstream is called, with no database connection held."""

import logging
import uuid
from collections.abc import Mapping, Sequence

from app.files.attachments import ImageSource
from app.files.models import File, FileKind
from app.files.repository import DocumentText
from app.generation.errors import ImageRequired, ModelNotVisionCapable
from app.generation.pipeline.stage import EmitEvent, ReplyPlan, Stage
from app.generation.prompt import DocumentInput, ImageInput, PromptAttachment
from app.generation.upstream.types import ModelConfig, UpstreamCall

logger = logging.getLogger("parley.generation")


class Attachments(Stage):
    name = "attachments"

    async def check(self, plan: ReplyPlan) -> None:
        """The new message's files: the user's, at most MAX_ATTACHMENTS, each once, images only
        for a vision model; then their content read (a document that cannot be read is refused
        before anything is stored). Reading commits the request's transaction."""
        if not plan.file_ids:
            if plan.needs_image:
                raise ImageRequired()
            return
        attachments = plan.scope.attachments
        files = await attachments.resolve(plan.user, plan.file_ids)
        check_vision(files, plan.model)
        if plan.needs_image and not any(file.kind == FileKind.IMAGE for file in files):
            raise ImageRequired()
        plan.new_files = await attachments.prepare(files) if files else None

    async def compose(self, plan: ReplyPlan) -> None:
        attachments, new = plan.scope.attachments, plan.new_files
        answered = plan.answered.id
        if plan.chat is not None:
            # Every attachment of the chat in one statement (none, in most chats).
            by_message = await attachments.in_chat(plan.chat.id)
        else:
            by_message = {}
        if new is not None:
            by_message[answered] = new.files  # the new message's, linked when it is saved
        attached = {e.id: by_message[e.id] for e in plan.history if e.id in by_message}
        if not attached:
            return
        # An image of the message being answered needs a vision model (a regenerated reply, or
        # an edit keeping its images, with another model); earlier ones are left out instead.
        check_vision(attached.get(answered, []), plan.model)
        known = new.texts if new is not None else {}
        wanted = {
            file.id
            for files in attached.values()
            for file in files
            if file.kind == FileKind.DOCUMENT and file.id not in known
        }
        texts = {**known, **await attachments.texts(wanted)} if wanted else known
        plan.attached_files = attached
        plan.attachments = {
            entry_id: [a for a in (_prompt_attachment(f, texts) for f in files) if a]
            for entry_id, files in attached.items()
        }

    def wants_upstream_hook(self, plan: ReplyPlan) -> bool:
        return plan.prompt is not None and bool(plan.prompt.images)

    async def before_upstream(self, plan: ReplyPlan, call: UpstreamCall, emit: EmitEvent) -> None:
        """The prompt's images read (a file attached to two messages once) and put in place."""
        assert plan.prompt is not None
        files = {file.id: file for files in plan.attached_files.values() for file in files}
        sources = {file_id: ImageSource.of(file) for file_id, file in files.items()}
        ready = plan.new_files.image_urls if plan.new_files is not None else {}
        wanted = dict.fromkeys(image.file_id for image in plan.prompt.images)
        urls = await plan.scope.attachments.image_urls([sources[i] for i in wanted], ready=ready)
        call.messages = plan.prompt.render(urls)


def check_vision(files: Sequence[File], config: ModelConfig) -> None:
    if not config.vision:
        image = next((file for file in files if file.kind == FileKind.IMAGE), None)
        if image is not None:
            raise ModelNotVisionCapable(config.name, image.name)


def _prompt_attachment(
    file: File, texts: Mapping[uuid.UUID, DocumentText]
) -> PromptAttachment | None:
    if file.kind == FileKind.IMAGE:
        return ImageInput(
            file_id=file.id,
            name=file.name,
            media_type=file.media_type,
            width=file.width or 0,
            height=file.height or 0,
        )
    text = texts.get(file.id)
    if text is None:
        # Every attached document's text is kept when it is first attached: this is a bug.
        logger.error("an attached document has no extracted text", extra={"file_id": str(file.id)})
        return None
    return DocumentInput(
        file_id=file.id,
        name=file.name,
        media_type=file.media_type,
        text=text.text,
        truncated=text.truncated,
        page_count=file.page_count,
    )
