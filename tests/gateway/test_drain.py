"""The pushers' shared loop: a failed round is logged and the loop goes on; stop ends it."""

from __future__ import annotations

import asyncio
import logging

import pytest

from gateway.delivery import drain


class _Queue:
    batch = 2
    poll_seconds = 0.0

    def __init__(self, answers: list[int | Exception]) -> None:
        self.answers = answers
        self.rounds = 0
        self.done = asyncio.Event()

    async def run_once(self) -> int:
        self.rounds += 1
        if not self.answers:
            self.done.set()
            return 0
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer


async def test_a_failed_round_is_logged_and_the_loop_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    queue = _Queue([RuntimeError("database gone"), 2, 2, 1])
    loop = drain.Loop("test-pusher", queue)
    loop.start()
    await asyncio.wait_for(queue.done.wait(), 10)
    await loop.stop()
    await loop.stop()  # a second stop is harmless
    assert queue.rounds >= 5
    failed = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert [(r.getMessage(), getattr(r, "loop", None)) for r in failed] == [
        ("round failed; retrying", "test-pusher")
    ]
