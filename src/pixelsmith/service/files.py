"""OpenAI's Files API: uploaded files (batch input, images for batch edits) and the files the
server writes (batch output). Metadata lives in the database (service/database.py: SQLite
beside the image storage, or PostgreSQL); contents live in the image store's blob space (local
disk, or the S3 bucket).

Every file belongs to its owner: the API key that uploaded it (as a hash), or "anonymous" when
the server takes any key. An owner never sees, reads or deletes another owner's files; to
them those files do not exist (404, as OpenAI answers).
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from typing import Any, Literal

from pixelsmith.errors import InvalidRequestError, NotFoundError, PayloadTooLargeError, shown
from pixelsmith.service.database import Database, Row
from pixelsmith.storage import ImageStore

# Purposes a client may upload with (the others of OpenAI's list belong to its assistants and
# fine-tuning, which this server does not have); batch_output is the server's own.
UPLOAD_PURPOSES = ("batch", "user_data", "vision")
FilePurpose = Literal["batch", "batch_output", "user_data", "vision"]
MAX_FILE_BYTES = 512 * 1024 * 1024  # OpenAI: files up to 512 MB
MAX_BATCH_FILE_BYTES = 200 * 1024 * 1024  # OpenAI: batch input up to 200 MB
BATCH_FILE_SECONDS = 30 * 24 * 3600  # batch files expire after 30 days unless told otherwise
MIN_EXPIRY_SECONDS, MAX_EXPIRY_SECONDS = 3600, 30 * 24 * 3600
MAX_LIST_LIMIT = 10_000
ANONYMOUS = "anonymous"

SCHEMA = """
CREATE TABLE IF NOT EXISTS files (
    id TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    filename TEXT NOT NULL,
    purpose TEXT NOT NULL,
    bytes INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER,
    seq INTEGER NOT NULL,
    -- Deleted files stay as rows (without contents): a client paging with `after` = the id of a
    -- file it has just deleted must still find its place.
    deleted INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS files_by_owner ON files (owner, seq);
"""


@dataclass(frozen=True)
class StoredFile:
    id: str
    owner: str
    filename: str
    purpose: str
    bytes: int
    created_at: int
    expires_at: int | None

    def to_wire(self) -> dict[str, Any]:
        """The FileObject the clients read. `status` is always `processed`: the clients'
        wait_for_processing polls for it."""
        wire: dict[str, Any] = {
            "id": self.id,
            "object": "file",
            "bytes": self.bytes,
            "created_at": self.created_at,
            "filename": self.filename,
            "purpose": self.purpose,
            "status": "processed",
        }
        if self.expires_at is not None:
            wire["expires_at"] = self.expires_at
        return wire


def _row_to_file(row: Row) -> StoredFile:
    return StoredFile(
        id=row["id"],
        owner=row["owner"],
        filename=row["filename"],
        purpose=row["purpose"],
        bytes=row["bytes"],
        created_at=row["created_at"],
        expires_at=row["expires_at"],
    )


def blob_key(file_id: str) -> str:
    return f"files/{file_id}"


def new_file_id() -> str:
    return "file-" + secrets.token_hex(12)


def expiry_seconds(purpose: str, expires_after: dict[str, Any] | None) -> int | None:
    """Seconds until the file expires (from its creation), or None for never."""
    if expires_after is None:
        return BATCH_FILE_SECONDS if purpose == "batch" else None
    if expires_after.get("anchor") != "created_at":
        raise InvalidRequestError(
            "Invalid 'expires_after.anchor': the only supported anchor is 'created_at'.",
            param="expires_after.anchor",
            code="invalid_value",
        )
    seconds = expires_after.get("seconds")
    try:
        seconds = int(seconds)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise InvalidRequestError(
            "Invalid 'expires_after.seconds': expected an integer.",
            param="expires_after.seconds",
            code="invalid_type",
        ) from None
    if not MIN_EXPIRY_SECONDS <= seconds <= MAX_EXPIRY_SECONDS:
        raise InvalidRequestError(
            f"Invalid 'expires_after.seconds': expected a value from {MIN_EXPIRY_SECONDS} to "
            f"{MAX_EXPIRY_SECONDS}, but got {seconds} instead.",
            param="expires_after.seconds",
            code="invalid_value",
        )
    return seconds


class FileService:
    """Create, list, read and delete files, per owner. Blocking (disk, database, object
    store): call it off the event loop."""

    def __init__(self, database: Database, store: ImageStore) -> None:
        self.database = database
        self.store = store
        database.executescript(SCHEMA)

    def create(
        self,
        owner: str,
        *,
        filename: str,
        purpose: str,
        data: bytes,
        expires_after: dict[str, Any] | None = None,
        server_purpose: bool = False,
    ) -> StoredFile:
        """A new file. `server_purpose` allows the purposes only the server writes."""
        allowed = UPLOAD_PURPOSES + (("batch_output",) if server_purpose else ())
        if purpose not in allowed:
            raise InvalidRequestError(
                f"Invalid value for 'purpose': '{shown(purpose)}'. This server supports "
                f"{', '.join(repr(p) for p in UPLOAD_PURPOSES)}.",
                param="purpose",
                code="invalid_value",
            )
        limit = MAX_BATCH_FILE_BYTES if purpose == "batch" else MAX_FILE_BYTES
        if len(data) > limit and not server_purpose:  # the server's own outputs have no cap
            raise PayloadTooLargeError(
                f"Invalid file 'file': {len(data) / 1e6:.1f} MB is over the "
                f"{limit // (1024 * 1024)} MB limit for purpose '{purpose}'.",
                param="file",
            )
        if purpose == "batch" and not filename.endswith(".jsonl"):
            raise InvalidRequestError(
                "Invalid file 'file': batch input must be a .jsonl file.",
                param="file",
                code="invalid_file_format",
            )
        seconds = expiry_seconds(purpose, expires_after)
        now = int(time.time())
        stored = StoredFile(
            id=new_file_id(),
            owner=owner,
            filename=filename[:255] or "file",
            purpose=purpose,
            bytes=len(data),
            created_at=now,
            expires_at=now + seconds if seconds is not None else None,
        )
        self.store.put_blob(blob_key(stored.id), data)
        self.database.execute(
            "INSERT INTO files (id, owner, filename, purpose, bytes, created_at, expires_at, seq)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, (SELECT COALESCE(MAX(seq), 0) + 1 FROM files))",
            (stored.id, owner, stored.filename, purpose, stored.bytes, now, stored.expires_at),
        )
        return stored

    def retrieve(self, owner: str, file_id: str) -> StoredFile:
        rows = self.database.execute(
            "SELECT * FROM files WHERE id = ? AND owner = ? AND deleted = 0 AND "
            "(expires_at IS NULL OR expires_at > ?)",
            (file_id, owner, int(time.time())),
        )
        if not rows:
            raise NotFoundError(f"No such File object: {shown(file_id)}", param="id")
        return _row_to_file(rows[0])

    def content(self, owner: str, file_id: str) -> tuple[StoredFile, bytes]:
        stored = self.retrieve(owner, file_id)
        try:
            return stored, self.store.get_blob(blob_key(stored.id))
        except FileNotFoundError:  # removed behind the server's back (a bucket rule, a person)
            raise NotFoundError(
                f"The content of file {stored.id} is no longer stored.", param="id"
            ) from None

    def delete(self, owner: str, file_id: str) -> str:
        stored = self.retrieve(owner, file_id)
        self.database.execute("UPDATE files SET deleted = 1 WHERE id = ?", (stored.id,))
        self.store.delete_blob(blob_key(stored.id))
        return stored.id

    def list(
        self,
        owner: str,
        *,
        after: str | None = None,
        limit: int = MAX_LIST_LIMIT,
        order: str = "desc",
        purpose: str | None = None,
    ) -> tuple[list[StoredFile], bool]:
        """A page of the owner's files by creation order, and whether more follow."""
        if order not in ("asc", "desc"):
            raise InvalidRequestError(
                f"Invalid value for 'order': '{shown(order)}'. Supported values are: 'asc' "
                "and 'desc'.",
                param="order",
                code="invalid_value",
            )
        if not 1 <= limit <= MAX_LIST_LIMIT:
            raise InvalidRequestError(
                f"Invalid 'limit': expected a value from 1 to {MAX_LIST_LIMIT}.",
                param="limit",
                code="invalid_value",
            )
        clauses = ["owner = ?", "deleted = 0", "(expires_at IS NULL OR expires_at > ?)"]
        parameters: list[Any] = [owner, int(time.time())]
        if purpose is not None:
            clauses.append("purpose = ?")
            parameters.append(purpose)
        comparison = "<" if order == "desc" else ">"
        if after is not None:
            clauses.append(f"seq {comparison} COALESCE((SELECT seq FROM files WHERE id = ? "
                           "AND owner = ?), -1)")  # fmt: skip
            parameters += [after, owner]
        rows = self.database.execute(
            f"SELECT * FROM files WHERE {' AND '.join(clauses)} "
            f"ORDER BY seq {'DESC' if order == 'desc' else 'ASC'} LIMIT ?",
            (*parameters, limit + 1),
        )
        files = [_row_to_file(row) for row in rows[:limit]]
        return files, len(rows) > limit

    def sweep(self) -> int:
        """Delete expired files. Returns how many."""
        expired = self.database.execute(
            "SELECT id FROM files WHERE deleted = 0 AND expires_at IS NOT NULL AND expires_at <= ?",
            (int(time.time()),),
        )
        for row in expired:
            self.database.execute("UPDATE files SET deleted = 1 WHERE id = ?", (row["id"],))
            self.store.delete_blob(blob_key(row["id"]))
        return len(expired)
