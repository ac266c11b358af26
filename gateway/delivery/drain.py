"""The background loop shared by the pass-update pushers (APNs and Google Wallet): run a
round, go again at once while rounds come back full, else wait; a failed round is logged
and the loop goes on."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Protocol

log = logging.getLogger(__name__)


class Drainer(Protocol):
    """A queue drainer: one round claims at most `batch` rows and says how many it did."""

    batch: int
    poll_seconds: float

    async def run_once(self) -> int: ...


class Loop:
    """Runs a drainer's rounds in one task, from `start` until `stop`."""

    def __init__(self, name: str, drainer: Drainer) -> None:
        self.name = name
        self.drainer = drainer
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=self.name)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        while True:
            try:
                claimed = await self.drainer.run_once()
            except Exception:
                log.warning("round failed; retrying", extra={"loop": self.name}, exc_info=True)
                claimed = 0
            if claimed < self.drainer.batch:
                await asyncio.sleep(self.drainer.poll_seconds)
