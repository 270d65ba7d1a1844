"""Checkpointer factory: SQLite file (default), memory (library use), Postgres by URI."""

from __future__ import annotations

import contextlib
import functools
import shlex
import sqlite3
import weakref
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.checkpoint.memory import InMemorySaver

from restoregraph.core.errors import RestoreGraphError, StoreError


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
    path = Path(text.removeprefix("sqlite:///"))
    path.parent.mkdir(parents=True, exist_ok=True)
    db = None
    try:
        db = sqlite3.connect(str(path), check_same_thread=False, timeout=30.0)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA busy_timeout=30000")
        saver = _checked_saver_class()(db, path=path)
        saver.setup()
        # closed when the saver goes, or at exit (atexit, which the CLI's fast exit also runs):
        # closing the last connection folds the write-ahead log back into the database file
        weakref.finalize(saver, db.close)
    except sqlite3.DatabaseError as exc:
        if db is not None:
            db.close()
        raise database_error(path, exc) from None
    return saver


# SQLite result codes of a damaged file: SQLITE_CORRUPT, SQLITE_NOTADB.
_DAMAGED_CODES = {11, 26}


def database_error(path: Path, exc: sqlite3.DatabaseError) -> StoreError:
    """A one-line ``StoreError`` (exit 2) for a failure of the checkpoint database ``path``,
    naming the file, and for a damaged file how to recover."""
    msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    code = getattr(exc, "sqlite_errorcode", None)
    damaged = code in _DAMAGED_CODES or type(exc) is sqlite3.DatabaseError
    if not damaged:
        return StoreError(f"checkpoint database {path}: {msg}")
    q, aside = shlex.quote(str(path)), shlex.quote(f"{path}.damaged")
    return StoreError(
        f"checkpoint database {path} is damaged ({msg}). Move it aside to go on with an empty "
        f"one (mv {q} {aside}, and its -wal/-shm files if any): new runs work, earlier runs "
        f"can no longer be resumed or undone; `sqlite3 {aside} .recover | sqlite3 {q}` may "
        "save them"
    )


@functools.cache
def _checked_saver_class() -> Any:
    """``SqliteSaver`` whose every database access turns ``sqlite3.DatabaseError`` (a damaged
    or unusable file) into ``database_error``'s ``StoreError`` (built lazily: langgraph's SQLite
    package loads only when a SQLite checkpointer is made)."""
    from langgraph.checkpoint.sqlite import SqliteSaver

    class CheckedSqliteSaver(SqliteSaver):
        def __init__(self, conn: sqlite3.Connection, *, path: Path) -> None:
            super().__init__(conn)
            self.path = path

        @contextlib.contextmanager
        def cursor(self, transaction: bool = True) -> Iterator[sqlite3.Cursor]:
            try:
                with super().cursor(transaction) as cur:
                    yield cur
            except sqlite3.DatabaseError as exc:
                raise database_error(self.path, exc) from None

        def setup(self) -> None:
            try:
                super().setup()
            except sqlite3.DatabaseError as exc:
                raise database_error(self.path, exc) from None

    return CheckedSqliteSaver
