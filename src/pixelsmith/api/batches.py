"""OpenAI's Batch API for image generations and edits: the batches, their lines and progress in
the SQLite database (beside the Files API's), and the runner that works through them.

A batch is a caller of the image service like an HTTP route: each line's body is decoded as
the route decodes it (JSON edits with `image_url` data URLs or `file_id`s of the owner's
files), goes through the same service entry, and gets what the route would answer, errors in
the same envelope. Lines run at batch priority: an interactive request waits behind no queued
batch line, only behind the batch work already on the device. Up to `max_batch_size` lines are
in flight at once, so that compatible ones share pipeline calls.

Status: validating -> in_progress -> finalizing -> completed; failed (the input file is
malformed: `errors` says where); cancelling -> cancelled; expired (past its 24 h window).
Each line's result is committed as it finishes, so a server restarted mid-batch resumes with
the lines that had not finished and never runs a finished one again.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import secrets
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import orjson
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from pixelsmith.api.error_handlers import error_answer
from pixelsmith.api.protocol import CreateImageRequest
from pixelsmith.api.transport.bodies import json_edit
from pixelsmith.engine.jobs import BATCH_PRIORITY
from pixelsmith.errors import (
    InvalidRequestError,
    NotFoundError,
    RateLimitError,
    ServiceUnavailableError,
    error_body,
    shown,
)
from pixelsmith.service import ImageService, RequestContext
from pixelsmith.service.database import Database
from pixelsmith.service.files import MAX_EXPIRY_SECONDS, MIN_EXPIRY_SECONDS, FileService

logger = logging.getLogger(__name__)

ENDPOINTS = ("/v1/images/generations", "/v1/images/edits")
COMPLETION_WINDOW_SECONDS = 24 * 3600
MAX_LINES = 50_000
MAX_LIST_LIMIT = 100
# A line refused for the moment (the model's queue full of interactive work) waits this long.
RETRY_SECONDS = 1.0
ACTIVE = ("validating", "in_progress", "finalizing", "cancelling")
# A runner renews its lease on a batch between rounds of lines; one that dies loses it after
# this long, and another runner (a restarted server, another replica) goes on.
LEASE_SECONDS = 120
# Finished batches are kept this long, as OpenAI keeps batch files: 30 days.
KEEP_FINISHED_SECONDS = 30 * 24 * 3600

SCHEMA = """
CREATE TABLE IF NOT EXISTS batches (
    id TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    seq INTEGER NOT NULL,
    status TEXT NOT NULL,
    body TEXT NOT NULL,
    -- The runner working on it, until when: several runners (processes, Ray replicas) share
    -- the database, and one batch is worked on by one of them at a time.
    lease_owner TEXT,
    lease_until INTEGER
);
CREATE INDEX IF NOT EXISTS batches_by_owner ON batches (owner, seq);
CREATE TABLE IF NOT EXISTS batch_lines (
    batch_id TEXT NOT NULL,
    line INTEGER NOT NULL,
    custom_id TEXT NOT NULL,
    request TEXT NOT NULL,
    result TEXT,
    failed INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (batch_id, line)
);
"""


class ExpiresAfter(BaseModel):
    model_config = ConfigDict(extra="forbid")
    anchor: Literal["created_at"]
    seconds: int = Field(ge=MIN_EXPIRY_SECONDS, le=MAX_EXPIRY_SECONDS)


class CreateBatchRequest(BaseModel):
    """`batches.create` (openai/types/batch_create_params.py)."""

    model_config = ConfigDict(extra="forbid")
    input_file_id: str = Field(max_length=256)
    endpoint: Literal["/v1/images/generations", "/v1/images/edits"]
    completion_window: Literal["24h"]
    metadata: dict[str, str] | None = None
    output_expires_after: ExpiresAfter | None = None


def _check_metadata(metadata: dict[str, str] | None) -> None:
    if metadata is None:
        return
    if len(metadata) > 16 or any(len(k) > 64 or len(v) > 512 for k, v in metadata.items()):
        raise InvalidRequestError(
            "Invalid 'metadata': at most 16 pairs, keys of at most 64 characters and values of "
            "at most 512.",
            param="metadata",
            code="invalid_value",
        )


@dataclass
class LineError:
    code: str
    message: str
    line: int | None = None
    param: str | None = None

    def to_wire(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, "line": self.line, "param": self.param}


class BatchStore:
    """Batches as JSON documents (their wire objects plus the owner's private fields) and
    their lines, in the shared database."""

    def __init__(self, database: Database) -> None:
        self.database = database
        database.executescript(SCHEMA)

    def insert(self, owner: str, batch: dict[str, Any]) -> None:
        self.database.execute(
            "INSERT INTO batches (id, owner, seq, status, body) VALUES "
            "(?, ?, (SELECT COALESCE(MAX(seq), 0) + 1 FROM batches), ?, ?)",
            (batch["id"], owner, batch["status"], json.dumps(batch)),
        )

    def save(self, batch: dict[str, Any], expected: str | None = None) -> bool:
        """Store `batch`; with `expected`, only if its stored status still is that (a cancel
        that came in meanwhile is not undone). Whether it was stored."""
        values = (batch["status"], json.dumps(batch), batch["id"])
        if expected is None:
            changed = self.database.change(
                "UPDATE batches SET status = ?, body = ? WHERE id = ?", values
            )
        else:
            changed = self.database.change(
                "UPDATE batches SET status = ?, body = ? WHERE id = ? AND status = ?",
                (*values, expected),
            )
        return changed == 1

    def claim(self, batch_id: str, runner: str, seconds: int) -> bool:
        """Take (or renew) the batch's lease for `runner`: False while another runner holds
        it."""
        now = int(time.time())
        return (
            self.database.change(
                "UPDATE batches SET lease_owner = ?, lease_until = ? WHERE id = ? AND "
                "(lease_owner IS NULL OR lease_owner = ? OR lease_until < ?)",
                (runner, now + seconds, batch_id, runner, now),
            )
            == 1
        )

    def get(self, owner: str | None, batch_id: str) -> dict[str, Any]:
        if owner is None:
            rows = self.database.execute("SELECT body FROM batches WHERE id = ?", (batch_id,))
        else:
            rows = self.database.execute(
                "SELECT body FROM batches WHERE id = ? AND owner = ?", (batch_id, owner)
            )
        if not rows:
            raise NotFoundError(f"No batch found with id '{shown(batch_id)}'.", param="id")
        found: dict[str, Any] = json.loads(rows[0]["body"])
        return found

    def owner(self, batch_id: str) -> str:
        rows = self.database.execute("SELECT owner FROM batches WHERE id = ?", (batch_id,))
        return str(rows[0]["owner"])

    def page(self, owner: str, after: str | None, limit: int) -> tuple[list[dict[str, Any]], bool]:
        """Newest first, as OpenAI lists batches."""
        clauses, parameters = ["owner = ?"], [owner]
        if after is not None:
            clauses.append(
                "seq < COALESCE((SELECT seq FROM batches WHERE id = ? AND owner = ?), -1)"
            )
            parameters += [after, owner]
        rows = self.database.execute(
            f"SELECT body FROM batches WHERE {' AND '.join(clauses)} ORDER BY seq DESC LIMIT ?",
            (*parameters, limit + 1),
        )
        return [json.loads(row["body"]) for row in rows[:limit]], len(rows) > limit

    def active_ids(self) -> list[str]:
        marks = ", ".join("?" for _ in ACTIVE)
        rows = self.database.execute(
            f"SELECT id FROM batches WHERE status IN ({marks}) ORDER BY seq", ACTIVE
        )
        return [row["id"] for row in rows]

    def sweep(self, older_than_seconds: int = KEEP_FINISHED_SECONDS) -> int:
        """Forget finished batches (and their lines) created more than this long ago; their
        files expire on their own. Returns how many."""
        cutoff = time.time() - older_than_seconds
        marks = ", ".join("?" for _ in ACTIVE)
        rows = self.database.execute(
            f"SELECT id, body FROM batches WHERE status NOT IN ({marks})", ACTIVE
        )
        old = [row["id"] for row in rows if json.loads(row["body"])["created_at"] < cutoff]
        for batch_id in old:
            self.database.execute("DELETE FROM batch_lines WHERE batch_id = ?", (batch_id,))
            self.database.execute("DELETE FROM batches WHERE id = ?", (batch_id,))
        return len(old)

    def add_lines(self, batch_id: str, lines: list[tuple[int, str, str]]) -> None:
        self.database.executemany(
            "INSERT INTO batch_lines (batch_id, line, custom_id, request) "
            "VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
            [(batch_id, line, custom_id, request) for line, custom_id, request in lines],
        )

    def pending(self, batch_id: str, limit: int) -> list[tuple[int, str, str]]:
        rows = self.database.execute(
            "SELECT line, custom_id, request FROM batch_lines "
            "WHERE batch_id = ? AND result IS NULL ORDER BY line LIMIT ?",
            (batch_id, limit),
        )
        return [(row["line"], row["custom_id"], row["request"]) for row in rows]

    def finish_line(self, batch_id: str, line: int, result: dict[str, Any], failed: bool) -> None:
        self.database.execute(
            "UPDATE batch_lines SET result = ?, failed = ? WHERE batch_id = ? AND line = ? "
            "AND result IS NULL",
            (orjson.dumps(result).decode(), int(failed), batch_id, line),
        )

    def counts(self, batch_id: str) -> tuple[int, int, int]:
        """(total, completed, failed) lines."""
        rows = self.database.execute(
            "SELECT COUNT(*) AS total, "
            "SUM(CASE WHEN result IS NOT NULL AND failed = 0 THEN 1 ELSE 0 END) AS completed, "
            "SUM(failed) AS failed FROM batch_lines WHERE batch_id = ?",
            (batch_id,),
        )
        row = rows[0]
        return int(row["total"] or 0), int(row["completed"] or 0), int(row["failed"] or 0)

    def results(self, batch_id: str, failed: bool) -> list[str]:
        rows = self.database.execute(
            "SELECT result FROM batch_lines WHERE batch_id = ? AND result IS NOT NULL "
            "AND failed = ? ORDER BY line",
            (batch_id, int(failed)),
        )
        return [row["result"] for row in rows]


def _line_problem(parsed: Any, endpoint: str, seen: set[str]) -> tuple[str, str, str | None] | None:
    """(code, message, param) of a line that breaks the batch file's structure, or None."""
    if not isinstance(parsed, dict):
        return "invalid_request", "Each line must be a JSON object.", None
    custom_id = parsed.get("custom_id")
    if not isinstance(custom_id, str) or not custom_id:
        return "missing_required_parameter", "Missing required parameter: 'custom_id'.", "custom_id"
    if len(custom_id) > 512:
        return "invalid_value", "'custom_id' is longer than 512 characters.", "custom_id"
    if custom_id in seen:
        return "duplicate_custom_id", "The custom_id of this line is used by another.", "custom_id"
    if parsed.get("method") != "POST":
        return "invalid_value", "'method' must be 'POST'.", "method"
    if parsed.get("url") != endpoint:
        return (
            "mismatched_url",
            f"'url' must be the batch's endpoint, '{endpoint}'.",
            "url",
        )
    if not isinstance(parsed.get("body"), dict):
        return "missing_required_parameter", "Missing required parameter: 'body'.", "body"
    return None


def _result_line(
    custom_id: str, status: int, request_id: str, body: dict[str, Any]
) -> dict[str, Any]:
    """An output or error file line, as OpenAI writes them."""
    return {
        "id": f"batch_req_{secrets.token_hex(12)}",
        "custom_id": custom_id,
        "response": {"status_code": status, "request_id": request_id, "body": body},
        "error": None,
    }


class BatchService:
    """The Batch API's entries (create, retrieve, list, cancel) and the runner that works
    through active batches, one at a time, resuming whatever a restart interrupted."""

    def __init__(
        self,
        store: BatchStore,
        files: FileService,
        images: Callable[[], ImageService],
        *,
        base_url: Callable[[], str],
        concurrency: int,
    ) -> None:
        self.store = store
        self.files = files
        self._images = images
        self._base_url = base_url
        self.concurrency = max(1, concurrency)
        self._wake = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self.runner_id = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"

    def _notify(self) -> None:
        """Wake the runner; called from worker threads (the routes run the API off the loop),
        so through the loop, which asyncio.Event needs."""
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._wake.set)

    # --- the API ------------------------------------------------------------------------

    def create(self, owner: str, request: CreateBatchRequest) -> dict[str, Any]:
        _check_metadata(request.metadata)
        try:
            source = self.files.retrieve(owner, request.input_file_id)
        except NotFoundError:
            raise InvalidRequestError(
                f"Invalid 'input_file_id': no such file: {shown(request.input_file_id)}.",
                param="input_file_id",
                code="invalid_value",
            ) from None
        if source.purpose != "batch":
            raise InvalidRequestError(
                "Invalid 'input_file_id': the file must have purpose 'batch'.",
                param="input_file_id",
                code="invalid_value",
            )
        now = int(time.time())
        batch: dict[str, Any] = {
            "id": f"batch_{secrets.token_hex(12)}",
            "object": "batch",
            "endpoint": request.endpoint,
            "input_file_id": request.input_file_id,
            "completion_window": request.completion_window,
            "status": "validating",
            "created_at": now,
            "expires_at": now + COMPLETION_WINDOW_SECONDS,
            "metadata": request.metadata,
            "request_counts": {"total": 0, "completed": 0, "failed": 0},
            "output_expires_seconds": (
                request.output_expires_after.seconds if request.output_expires_after else None
            ),
        }
        self.store.insert(owner, batch)
        self._notify()
        return public(batch)

    def retrieve(self, owner: str, batch_id: str) -> dict[str, Any]:
        return public(self.store.get(owner, batch_id))

    def list(self, owner: str, after: str | None, limit: int) -> tuple[list[dict[str, Any]], bool]:
        batches, has_more = self.store.page(owner, after, limit)
        return [public(batch) for batch in batches], has_more

    def cancel(self, owner: str, batch_id: str) -> dict[str, Any]:
        batch = self.store.get(owner, batch_id)
        if batch["status"] in ("validating", "in_progress"):
            was = batch["status"]
            batch["status"] = "cancelling"
            batch["cancelling_at"] = int(time.time())
            if not self.store.save(batch, expected=was):  # it moved on meanwhile: look again
                return self.cancel(owner, batch_id)
            self._notify()
        elif batch["status"] not in ("cancelling", "cancelled"):
            raise InvalidRequestError(
                f"Cannot cancel a batch with status '{batch['status']}'.",
                param=None,
                code="invalid_state",
            )
        return public(batch)

    # --- the runner ---------------------------------------------------------------------

    async def run_forever(self) -> None:
        """Work through the active batches, oldest first; sleep until a batch is created."""
        self._loop = asyncio.get_running_loop()
        while True:
            self._wake.clear()  # before reading: a batch created from here on wakes the wait
            ids = await asyncio.to_thread(self.store.active_ids)
            for batch_id in ids:
                if not await asyncio.to_thread(
                    self.store.claim, batch_id, self.runner_id, LEASE_SECONDS
                ):
                    continue  # another runner has it
                try:
                    await self._advance(batch_id)
                except asyncio.CancelledError:
                    raise
                except Exception:  # one broken batch must not stop the others
                    logger.exception("batch %s failed in the runner", batch_id)
                    await asyncio.to_thread(self._fail, batch_id, "internal_error",
                                            "The server failed to run this batch.")  # fmt: skip
            if not ids:
                try:
                    await asyncio.wait_for(self._wake.wait(), timeout=60)
                except asyncio.TimeoutError:
                    pass

    async def _advance(self, batch_id: str) -> None:
        batch = await asyncio.to_thread(self.store.get, None, batch_id)
        if batch["status"] == "validating":
            await asyncio.to_thread(self._validate, batch)
        elif batch["status"] == "in_progress":
            await self._run_lines(batch)
        elif batch["status"] == "finalizing":
            await asyncio.to_thread(self._finalize, batch, "completed")
        elif batch["status"] == "cancelling":
            await asyncio.to_thread(self._finalize, batch, "cancelled")

    def _fail(self, batch_id: str, code: str, message: str) -> None:
        batch = self.store.get(None, batch_id)
        batch.update(status="failed", failed_at=int(time.time()))
        batch["errors"] = {"object": "list", "data": [LineError(code, message).to_wire()]}
        self.store.save(batch)

    def _validate(self, batch: dict[str, Any]) -> None:
        """Structural checks of the input file, as OpenAI makes them: any problem fails the
        batch with `errors`; the lines' bodies are checked only when they run."""
        owner = self.store.owner(batch["id"])
        try:
            _, data = self.files.content(owner, batch["input_file_id"])
        except NotFoundError:
            self._fail(batch["id"], "missing_file", "The input file no longer exists.")
            return
        errors: list[LineError] = []
        lines: list[tuple[int, str, str]] = []
        seen: set[str] = set()
        # "\n" only: U+2028 and the like are valid inside JSON strings (splitlines breaks them).
        for number, raw in enumerate(data.decode("utf-8", "replace").split("\n"), 1):
            if not raw.strip():
                continue
            try:
                parsed = json.loads(raw)
            except ValueError:
                errors.append(
                    LineError("invalid_json_line", "This line is not valid JSON.", number)
                )
                continue
            problem = _line_problem(parsed, batch["endpoint"], seen)
            if problem is not None:
                errors.append(LineError(problem[0], problem[1], number, problem[2]))
                continue
            seen.add(parsed["custom_id"])
            lines.append((number, parsed["custom_id"], json.dumps(parsed["body"])))
        if not lines and not errors:
            errors.append(LineError("empty_file", "The input file has no requests."))
        if len(lines) > MAX_LINES:
            errors.append(LineError("too_many_requests", f"At most {MAX_LINES} requests."))
        if errors:
            batch.update(status="failed", failed_at=int(time.time()))
            batch["errors"] = {"object": "list", "data": [e.to_wire() for e in errors[:1000]]}
            self.store.save(batch, expected="validating")
            return
        self.store.add_lines(batch["id"], lines)
        batch.update(status="in_progress", in_progress_at=int(time.time()))
        batch["request_counts"] = {"total": len(lines), "completed": 0, "failed": 0}
        if not self.store.save(batch, expected="validating"):
            # Cancelled while validating: the lines are stored; the next pass finalizes it.
            current = self.store.get(None, batch["id"])
            current["request_counts"] = batch["request_counts"]
            self.store.save(current)

    async def _run_lines(self, batch: dict[str, Any]) -> None:
        owner = await asyncio.to_thread(self.store.owner, batch["id"])
        while True:
            if not await asyncio.to_thread(
                self.store.claim, batch["id"], self.runner_id, LEASE_SECONDS
            ):
                return  # the lease ran out and another runner took over
            current = await asyncio.to_thread(self.store.get, None, batch["id"])
            if current["status"] != "in_progress":
                return  # cancelled meanwhile: the next pass finalizes it
            if time.time() > current["expires_at"]:
                # Past the window: what finished is kept in the files, the rest never runs.
                await asyncio.to_thread(self._finalize, current, "expired")
                return
            pending = await asyncio.to_thread(self.store.pending, batch["id"], self.concurrency)
            if not pending:
                current.update(status="finalizing", finalizing_at=int(time.time()))
                if await asyncio.to_thread(self.store.save, current, "in_progress"):
                    await asyncio.to_thread(self._finalize, current, "completed")
                return  # (or cancelled meanwhile: the next pass finalizes it as cancelled)
            finished = await asyncio.gather(
                *(self._run_line(batch, owner, line, custom_id, body)
                  for line, custom_id, body in pending)
            )  # fmt: skip
            await asyncio.to_thread(self._update_counts, batch["id"])
            if not all(finished):
                await asyncio.sleep(RETRY_SECONDS)  # the queue was full: give it room

    def _update_counts(self, batch_id: str) -> None:
        batch = self.store.get(None, batch_id)
        total, completed, failed = self.store.counts(batch_id)
        batch["request_counts"] = {"total": total, "completed": completed, "failed": failed}
        self.store.save(batch, expected=batch["status"])

    async def _run_line(
        self, batch: dict[str, Any], owner: str, line: int, custom_id: str, body: str
    ) -> bool:
        """Run one line and store its result; False when it was refused for the moment (a
        full queue, a replica that may recover) and stays pending."""
        request_id = f"req_{secrets.token_hex(12)}"
        context = RequestContext(
            request_id=request_id, base_url=self._base_url(), priority=BATCH_PRIORITY
        )
        try:
            answer = await self._answer(batch["endpoint"], owner, json.loads(body), context)
            result = _result_line(custom_id, 200, request_id, answer)
            failed = False
        except (RateLimitError, ServiceUnavailableError) as exc:
            if isinstance(exc, RateLimitError) or exc.headers.get("x-should-retry") == "true":
                return False
            known = error_answer(exc)
            assert known is not None
            result = _result_line(custom_id, known[0], request_id, known[1])
            failed = True
        except Exception as exc:
            known = error_answer(exc)
            if known is None:
                logger.exception("batch %s line %d failed", batch["id"], line)
                known = (500, error_body(
                    f"The server had an error while processing this request ({request_id}).",
                    type="server_error",
                ))  # fmt: skip
            result = _result_line(custom_id, known[0], request_id, known[1])
            failed = True
        await asyncio.to_thread(self.store.finish_line, batch["id"], line, result, failed)
        return True

    async def _answer(
        self, endpoint: str, owner: str, body: Any, context: RequestContext
    ) -> dict[str, Any]:
        """What the interactive route would answer for `body`, as its JSON."""
        if not isinstance(body, dict):
            raise InvalidRequestError(
                "The request body must be a JSON object.", code="invalid_type"
            )
        if body.get("stream"):
            raise InvalidRequestError(
                "stream is not supported in batches.", param="stream", code="unsupported_value"
            )
        images = self._images()
        if endpoint == "/v1/images/generations":
            try:
                request = CreateImageRequest.model_validate(body)
            except ValidationError as exc:
                raise RequestValidationError(exc.errors()) from None
            answer = await images.generate(request, context)
        else:

            async def uploaded(file_id: str) -> bytes:
                return (await asyncio.to_thread(self.files.content, owner, file_id))[1]

            edit, inputs = await json_edit(dict(body), None, uploaded)
            answer = await images.edit(edit, inputs, context)
        dumped: dict[str, Any] = answer.model_dump(exclude_none=True)  # type: ignore[union-attr]
        return dumped

    def _finalize(self, batch: dict[str, Any], status: str) -> None:
        """Write the output and error files of the lines that finished, and end the batch
        (completed, cancelled or expired)."""
        owner = self.store.owner(batch["id"])
        expires = batch.get("output_expires_seconds")
        expires_after = {"anchor": "created_at", "seconds": expires} if expires else None
        for failed, key in ((False, "output_file_id"), (True, "error_file_id")):
            lines = self.store.results(batch["id"], failed)
            if lines and not batch.get(key):
                written = self.files.create(
                    owner,
                    filename=f"{batch['id']}_{'error' if failed else 'output'}.jsonl",
                    purpose="batch_output",
                    data=("\n".join(lines) + "\n").encode(),
                    expires_after=expires_after,
                    server_purpose=True,
                )
                batch[key] = written.id
        total, completed, failed_count = self.store.counts(batch["id"])
        batch["request_counts"] = {"total": total, "completed": completed, "failed": failed_count}
        at = {"completed": "completed_at", "cancelled": "cancelled_at", "expired": "expired_at"}
        batch.update({"status": status, at[status]: int(time.time())})
        self.store.save(batch)


def public(batch: dict[str, Any]) -> dict[str, Any]:
    """The Batch object the clients read, without the server's own fields."""
    return {key: value for key, value in batch.items() if key != "output_expires_seconds"}
