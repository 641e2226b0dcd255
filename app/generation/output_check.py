"""A reply's upstream events with the guardrails' output check in between (app/guardrails/
output.py): text reaches the reply only once the check released it.

On a violation the check raises ContentBlocked out of this generator; the reply's `aclosing`
block then closes it, and this closes the provider's stream, which closes the upstream request
at once. When the upstream fails after some text, what was held back is checked and released
first, so the saved partial reply is what the client saw."""

from collections.abc import AsyncGenerator
from contextlib import aclosing

from app.core.errors import AppError
from app.generation.upstream.types import Finish, TextDelta, UpstreamEvent, Usage
from app.guardrails.output import OutputGuard


async def checked(
    events: AsyncGenerator[UpstreamEvent, None], guard: OutputGuard
) -> AsyncGenerator[UpstreamEvent, None]:
    ended = False
    try:
        async with aclosing(events) as upstream:
            async for event in upstream:
                if isinstance(event, TextDelta):
                    released = await guard.feed(event.text)
                    if released:
                        yield TextDelta(released)
                    continue
                if not isinstance(event, (Usage, Finish)):  # a tool call: not text to check
                    yield event
                    continue
                if not ended:  # Usage or Finish: the text is complete
                    ended = True
                    if rest := await guard.end():
                        yield TextDelta(rest)
                yield event
    except AppError as exc:
        if ended or exc.code == "content_blocked":
            raise
        if rest := await guard.end():
            yield TextDelta(rest)
        raise
