"""A lock for the tasks of one :class:`aiotls.anyio.TLSStream`, cheap when nobody waits."""

from __future__ import annotations

from collections import deque

import anyio


class _Gate:
    """A lock for the tasks of one stream, as cheap as a flag when nobody waits.

    Reads and writes take one each, once per call: trio's ``Lock`` (behind anyio's) costs
    ~1 us per acquire/release pair, a tenth of a small message's whole path.  Held by one
    task at a time; a task that finds it held waits on an :class:`anyio.Event` of its own,
    in arrival order, and ``release`` hands the gate straight to the first waiter.
    """

    __slots__ = ("_held", "_waiters")

    def __init__(self) -> None:
        self._held = False
        self._waiters: deque[anyio.Event] = deque()

    def locked(self) -> bool:
        return self._held

    def acquire_nowait(self) -> None:
        if self._held:
            raise anyio.WouldBlock
        self._held = True

    async def acquire(self) -> None:
        if not self._held:
            self._held = True
            return
        event = anyio.Event()
        self._waiters.append(event)
        try:
            await event.wait()
        except BaseException:
            if event.is_set():
                self.release()  # handed over as we were cancelled: pass it on
            else:
                self._waiters.remove(event)
            raise

    def release(self) -> None:
        if self._waiters:
            self._waiters.popleft().set()  # (still held: now by that waiter)
        else:
            self._held = False

    async def __aenter__(self) -> None:
        await self.acquire()

    async def __aexit__(self, *exc: object) -> None:
        self.release()
