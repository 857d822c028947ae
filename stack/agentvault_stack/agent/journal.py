"""A reference agent's tasks kept in an SQLite file, so that they outlive the agent's process.

Why: an agent restart loses in-memory tasks, and the provider must tell that (``TaskLostError``) from an
agent that keeps its tasks and finishes them after a restart. With ``--task-store PATH`` the agent
saves each task whenever its state changes (not per streamed token: a run cut off by a restart is
rolled back and run again, see ``tasks.py``), in one row of JSON per task. The standard library's
``sqlite3`` in WAL mode: a write survives the process being killed the moment after it.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any


class TaskJournal:
    """Tasks by id, as the JSON of :meth:`AgentTask.saved`; one connection, used from the server's loop."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("CREATE TABLE IF NOT EXISTS tasks (id TEXT PRIMARY KEY, task TEXT NOT NULL)")

    def save(self, saved: dict[str, Any]) -> None:
        self._db.execute("INSERT OR REPLACE INTO tasks (id, task) VALUES (?, ?)",
                         (saved["id"], json.dumps(saved, separators=(",", ":"))))

    def load(self) -> list[dict[str, Any]]:
        return [json.loads(row[0]) for row in self._db.execute("SELECT task FROM tasks ORDER BY rowid")]

    def close(self) -> None:
        self._db.close()
