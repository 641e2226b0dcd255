"""Tool calls waiting for their user's approval, and the answers reaching them across workers.

A call that needs approval waits in the worker streaming its reply; the user's answer may reach
any worker. It is handed over in the process when the call waits there, and otherwise (with
REDIS_URL) published on the invalidation channel (app/core/invalidation.py), whose readers in
every worker hand it to the call if they hold it."""

import asyncio
import json
import uuid
from typing import Literal

from app.core.invalidation import Invalidations

APPROVAL_TOPIC = "tool-approval"

Verdict = Literal["approved", "denied", "timed_out"]


class PendingApprovals:
    def __init__(self, invalidations: Invalidations) -> None:
        self.invalidations = invalidations
        self._waiting: dict[tuple[uuid.UUID, str], asyncio.Future[bool]] = {}
        invalidations.subscribe(APPROVAL_TOPIC, self._delivered)

    async def wait(self, reply_id: uuid.UUID, call_id: str, timeout: float) -> Verdict:  # noqa: ASYNC109
        """The user's answer to a call of a reply, or `timed_out` after `timeout` seconds."""
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._waiting[(reply_id, call_id)] = future
        try:
            async with asyncio.timeout(timeout):
                return "approved" if await future else "denied"
        except TimeoutError:
            return "timed_out"
        finally:
            self._waiting.pop((reply_id, call_id), None)

    def waiting(self, reply_id: uuid.UUID, call_id: str) -> bool:
        return (reply_id, call_id) in self._waiting

    def answer(self, reply_id: uuid.UUID, call_id: str, approve: bool) -> bool:
        """Hands the answer to the call if it waits in this worker."""
        future = self._waiting.get((reply_id, call_id))
        if future is None or future.done():
            return False
        future.set_result(approve)
        return True

    async def send(self, reply_id: uuid.UUID, call_id: str, approve: bool) -> bool:
        """Hands the answer over here, or publishes it for the other workers (REDIS_URL); False
        when no worker can be holding the call."""
        if self.answer(reply_id, call_id, approve):
            return True
        if not self.invalidations.shared:
            return False
        message = json.dumps({"reply": str(reply_id), "call": call_id, "approve": approve})
        await self.invalidations.publish(APPROVAL_TOPIC, message)
        return True

    def _delivered(self, value: str) -> None:
        try:
            message = json.loads(value)
            self.answer(uuid.UUID(message["reply"]), str(message["call"]), bool(message["approve"]))
        except (ValueError, KeyError, TypeError):
            return
