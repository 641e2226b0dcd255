"""A reply's log: its events numbered from 1 (the SSE `id:`), the readers following it, each at
its own place, and, with Redis, each event published for the other workers (reply_buffer.py).

The reply's task (reply_stream.py) only emits and finishes; the log numbers, wakes readers and
publishes. Once the reply has ended and nobody reads it, the log is swapped for a compact form
(`EndedLog`) kept for clients rejoining: its text, where each event's text ends in it, and the
events other than deltas by their place (an event object per token is ~400 bytes).
"""

import asyncio
from array import array
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass

from app.generation import reply_events
from app.generation.reply_events import ReplyEvent


def _nothing() -> None:
    return None


class ReplyLog:
    """One reply's numbered events and their readers."""

    def __init__(
        self,
        *,
        on_reader: Callable[[], None] = _nothing,
        on_idle: Callable[[], None] = _nothing,
    ) -> None:
        # Called when a reader starts following the live log, and when the last one leaves
        # before the reply has ended (the reply's disconnect policy).
        self._on_reader = on_reader
        self._on_idle = on_idle
        # Where each event goes besides the log (the shared buffer); must not wait.
        self.publish: Callable[[ReplyEvent], None] | None = None
        # Every event so far, in order: event n (its id) is _events[n - 1].
        self._events: list[ReplyEvent] = []
        self._wake: asyncio.Event | None = None  # set when the log grows, for waiting readers
        self.readers = 0
        self.finished = False
        self._ended: EndedLog | None = None

    @property
    def last_event_id(self) -> int:
        return self._ended.count if self._ended is not None else len(self._events)

    def emit(self, event: ReplyEvent) -> ReplyEvent:
        """Numbers the event, appends it for every reader, and publishes it."""
        event = event.numbered(len(self._events) + 1)
        self._events.append(event)
        if self.publish is not None:
            self.publish(event)
        self._wake_readers()
        return event

    def finish(self) -> None:
        """The reply has ended: readers read to the end and stop; with none, the log compacts."""
        self.finished = True
        self._wake_readers()
        if not self.readers:
            self.compact()

    async def read(self, after: int = 0) -> AsyncIterator[ReplyEvent]:
        """The events after the one numbered `after` (0: from the start), live until the last.
        A reader that fell behind gets the waiting deltas joined (reply_events.next_event)."""
        if self._ended is not None:
            for event in self._ended.after(after):
                yield event
            return
        self.readers += 1
        self._on_reader()
        events = self._events
        cursor = max(0, after)
        try:
            while True:
                if cursor >= len(events):
                    if self.finished:
                        return
                    if self._wake is None:
                        self._wake = asyncio.Event()
                    await self._wake.wait()
                    continue
                event, cursor = reply_events.next_event(events, cursor)
                yield event
                if event.final:
                    return
        finally:
            self.readers -= 1
            if self.readers == 0:
                if self.finished:
                    self.compact()
                else:
                    self._on_idle()

    def compact(self) -> None:
        """Swaps the log of an ended reply nobody reads for its compact form."""
        if self._ended is None and self.finished and not self.readers:
            self._ended = EndedLog.of(self._events)
            self._events = []

    def _wake_readers(self) -> None:
        wake = self._wake
        if wake is not None:
            self._wake = None
            wake.set()


@dataclass(frozen=True)
class EndedLog:
    """An ended reply's events, compactly: `ends[i]` is where the text of events 1..i+1 ends."""

    text: str
    ends: "array[int]"
    others: dict[int, ReplyEvent]  # the events that are not deltas, by index (id - 1)

    @classmethod
    def of(cls, log: Sequence[ReplyEvent]) -> "EndedLog":
        parts: list[str] = []
        ends = array("q")
        others: dict[int, ReplyEvent] = {}
        length = 0
        for index, event in enumerate(log):
            if event.name == "delta":
                parts.append(event.data["content"])
                length += len(parts[-1])
            else:
                others[index] = event
            ends.append(length)
        return cls("".join(parts), ends, others)

    @property
    def count(self) -> int:
        return len(self.ends)

    def after(self, after: int) -> Iterator[ReplyEvent]:
        """The events after number `after`, consecutive deltas joined as a live reader gets
        them when it falls behind (numbered as the last)."""
        index, count = max(0, after), len(self.ends)
        while index < count:
            event = self.others.get(index)
            if event is not None:
                yield event
                index += 1
                continue
            last = index
            while last + 1 < count and last + 1 not in self.others:
                last += 1
            start = self.ends[index - 1] if index else 0
            yield ReplyEvent("delta", {"content": self.text[start : self.ends[last]]}, last + 1)
            index = last + 1
