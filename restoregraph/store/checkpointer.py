"""Checkpointer factory: SQLite file (default), memory (library use), Postgres by URI."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.checkpoint.memory import InMemorySaver

from restoregraph.core.errors import RestoreGraphError


def make_checkpointer(uri: str | Path | None) -> BaseCheckpointSaver[Any]:
    """``None``/"memory" -> in-memory; "postgresql://..." -> Postgres; else a SQLite file path."""
    if uri is None or str(uri) == "memory":
        return InMemorySaver()
    text = str(uri)
    if text.startswith(("postgres://", "postgresql://")):
        try:
            from langgraph.checkpoint.postgres import PostgresSaver  # type: ignore[import-not-found]
        except ImportError:
            raise RestoreGraphError(
                "Postgres checkpoints need the 'langgraph-checkpoint-postgres' package"
            ) from None
        import psycopg  # type: ignore[import-not-found]

        conn = psycopg.connect(text, autocommit=True, prepare_threshold=0)
        saver = PostgresSaver(conn)
        saver.setup()
        return saver
    from langgraph.checkpoint.sqlite import SqliteSaver

    path = Path(text.removeprefix("sqlite:///"))
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(str(path), check_same_thread=False, timeout=30.0)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA busy_timeout=30000")
    saver = SqliteSaver(conn)
    saver.setup()
    return saver
