"""A fresh database for one benchmark run: on DATABASE_URL's server if set, else on an
embedded PostgreSQL under the run's work directory. `drop()` removes it again."""

from __future__ import annotations

import asyncio
import os
import random
from pathlib import Path

from gateway import db


class ScratchDatabase:
    def __init__(self, work: Path) -> None:
        given = os.environ.get("DATABASE_URL")
        self._embedded = None if given else db.EmbeddedServer(work)
        self._server = given or self._embedded.url("postgres")  # type: ignore[union-attr]
        self.name = f"gwbench_{random.randrange(16**6):06x}"
        self.url = asyncio.run(db.create_database(self._server, self.name))

    def drop(self) -> None:
        asyncio.run(db.drop_database(self._server, self.name))
        if self._embedded is not None:
            self._embedded.stop()
