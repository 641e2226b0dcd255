"""The audit log: an append-only record of security and administrative events.

Other packages record an event with one call, in the unit of work of the change it records, so
the event is written if and only if the change is:

    from app import audit
    from app.audit import actions

    await audit.record(uow, actions.GROUP_CREATED, target=audit.Target("group", group.id))

The actor is the signed-in user of the request unless given; the IP address, user agent and
request id come from the request being served (docs/audit.md has the whole contract).
"""

from app.audit import actions
from app.audit.recorder import Target, record

__all__ = ["Target", "actions", "record"]
