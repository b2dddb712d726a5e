"""The database of the Files and Batch APIs: SQLite in a file beside the image storage by
default (WAL mode: readers never wait for the writer), or PostgreSQL (`database_url`) when
several processes or machines must share it, as the replicas of a Ray Serve deployment do.

Both take the same SQL, written to their common ground: `?` placeholders (rewritten to
`%s` for psycopg), `ON CONFLICT DO NOTHING`, no JSON functions, booleans as integers.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

Row = Mapping[str, Any]  # a row by column name: sqlite3.Row, or psycopg's dict rows


class Database(Protocol):
    def execute(self, sql: str, parameters: tuple[Any, ...] = ()) -> list[Row]:
        """One statement; its rows (none for a statement that returns none)."""
        ...

    def change(self, sql: str, parameters: tuple[Any, ...] = ()) -> int:
        """An UPDATE or DELETE; how many rows it changed."""
        ...

    def executemany(self, sql: str, rows: list[tuple[Any, ...]]) -> None:
        """All of `rows` in one transaction."""
        ...

    def executescript(self, script: str) -> None:
        """Several statements without parameters (schemas)."""
        ...

    def close(self) -> None: ...


class SQLiteDatabase:
    """One SQLite connection shared by the threads of the process; each call holds the lock
    for one statement or transaction. Several processes on one machine may share the file."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        # Private before SQLite first opens it: its -wal and -shm files take the database
        # file's permissions, and they hold prompts and results too.
        path.touch(mode=0o600, exist_ok=True)
        path.chmod(0o600)
        self._connection = sqlite3.connect(
            path, check_same_thread=False, isolation_level=None, timeout=30
        )
        self._connection.row_factory = sqlite3.Row
        self._lock = threading.Lock()
        with self._lock:
            self._connection.execute("PRAGMA journal_mode=WAL")
            self._connection.execute("PRAGMA synchronous=NORMAL")

    def execute(self, sql: str, parameters: tuple[Any, ...] = ()) -> list[Row]:
        with self._lock:
            return self._connection.execute(sql, parameters).fetchall()

    def change(self, sql: str, parameters: tuple[Any, ...] = ()) -> int:
        with self._lock:
            return self._connection.execute(sql, parameters).rowcount

    def executemany(self, sql: str, rows: list[tuple[Any, ...]]) -> None:
        with self._lock:
            self._connection.execute("BEGIN")
            try:
                self._connection.executemany(sql, rows)
            except BaseException:
                self._connection.execute("ROLLBACK")
                raise
            self._connection.execute("COMMIT")

    def executescript(self, script: str) -> None:
        with self._lock:
            self._connection.executescript(script)

    def close(self) -> None:
        with self._lock:
            self._connection.close()


class PostgresDatabase:
    """One psycopg connection (autocommit) shared by the threads of the process."""

    def __init__(self, url: str) -> None:
        import psycopg
        from psycopg.rows import dict_row

        self._connection: Any = psycopg.connect(url, autocommit=True, row_factory=dict_row)
        self._lock = threading.Lock()

    @staticmethod
    def _sql(sql: str) -> str:
        return sql.replace("?", "%s")  # the queries hold no other question marks

    def execute(self, sql: str, parameters: tuple[Any, ...] = ()) -> list[Row]:
        with self._lock:
            cursor = self._connection.execute(self._sql(sql), parameters)
            return list(cursor.fetchall()) if cursor.description else []

    def change(self, sql: str, parameters: tuple[Any, ...] = ()) -> int:
        with self._lock:
            return int(self._connection.execute(self._sql(sql), parameters).rowcount)

    def executemany(self, sql: str, rows: list[tuple[Any, ...]]) -> None:
        with self._lock, self._connection.transaction():
            self._connection.cursor().executemany(self._sql(sql), rows)

    def executescript(self, script: str) -> None:
        with self._lock:
            self._connection.execute(script)

    def close(self) -> None:
        with self._lock:
            self._connection.close()


def open_database(url: str | None, path: Path) -> Database:
    """PostgreSQL at `url` (postgresql://...), else SQLite at `path`."""
    if url:
        try:
            return PostgresDatabase(url)
        except ImportError as exc:
            raise ValueError(
                f"database_url needs psycopg ({exc}): pip install 'pixelsmith[postgres]'"
            ) from exc
    return SQLiteDatabase(path)
