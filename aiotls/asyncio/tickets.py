"""Re-reading a session ticket key file on a schedule, in an asyncio task."""

from __future__ import annotations

import asyncio
import logging
import math

from ..tickets import TicketKeyFile

__all__ = ["watch_ticket_keys"]

_log = logging.getLogger("aiotls.tickets")


def watch_ticket_keys(key_file: TicketKeyFile, *, every: float) -> asyncio.Task[None]:
    """Call ``key_file.reload()`` every ``every`` seconds, in a task on the running loop.

    Each reload re-reads the file only if it changed; a bad file is logged and the keys in
    use stay (see :meth:`aiotls.tickets.TicketKeyFile.reload`), so the task never ends by
    itself: cancel it when the server stops. ::

        keys = aiotls.tickets.TicketKeyFile("/etc/myapp/ticket.keys", ctx)  # raises if bad
        reloader = aiotls.asyncio.watch_ticket_keys(keys, every=60)
        ...
        reloader.cancel()

    Choose ``every`` well below the rotation interval: after a rotation, a server that has
    not reloaded yet opens tickets sealed with the new key with a full handshake instead.
    """
    if isinstance(every, bool) or not isinstance(every, (int, float)) \
            or not math.isfinite(every) or every <= 0:
        raise ValueError(f"every must be a number of seconds > 0, not {every!r}")

    async def reload_forever() -> None:
        while True:
            await asyncio.sleep(every)
            try:
                key_file.reload()
            except Exception:  # (reload() logs bad files itself; this is a bug, not a file)
                _log.exception("reloading the ticket keys from %s failed; keeping the keys "
                               "in use", key_file.path)

    return asyncio.get_running_loop().create_task(
        reload_forever(), name=f"aiotls ticket keys {key_file.path}")
