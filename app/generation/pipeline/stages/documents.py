"""Documents' text through the guardrails' untrusted-text checks: personal data redacted (or the
request refused), instructions aimed at the model flagged. Only the new message's documents are
recorded as events; earlier ones were when they were attached."""

from dataclasses import replace

from app.generation.pipeline.stage import ReplyPlan, Stage
from app.generation.prompt import DocumentInput
from app.guardrails.pipeline import GuardrailPipeline, UntrustedText


class Documents(Stage):
    name = "documents"

    def __init__(self, guardrails: GuardrailPipeline) -> None:
        self.guardrails = guardrails

    async def compose(self, plan: ReplyPlan) -> None:
        documents = [
            (entry_id, index, item)
            for entry_id, items in plan.attachments.items()
            for index, item in enumerate(items)
            if isinstance(item, DocumentInput)
        ]
        if not documents:
            return
        new = plan.new_files
        new_ids = {file.id for file in new.files} if new is not None else set()
        context = plan.events_context(message_id=plan.parent.id if plan.parent else None)
        for record in (True, False):
            group = [d for d in documents if (d[2].file_id in new_ids) == record]
            if not group:
                continue
            results = await self.guardrails.check_untrusted(
                [UntrustedText(doc.text, "attachment", doc.name) for _e, _i, doc in group],
                mode=plan.mode,
                context=context,
                record=record,
            )
            for (entry_id, index, doc), result in zip(group, results, strict=True):
                plan.attachments[entry_id][index] = replace(
                    doc, text=result.text, flagged=result.flagged
                )
