"""Logging setup for the server and the CLI: one line per record, in text or JSON.

Client-supplied text can reach a log message (a path, a model name, an error's message), so a
newline or another control character in a message never starts a new line: text lines show it
escaped (`\\n`, `\\x1b`), JSON lines encode it. Tracebacks, which the server itself writes,
keep their lines in text mode and go in an `exception` field in JSON.
"""

from __future__ import annotations

import logging
import re
import time
from typing import Any

import orjson

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# Fields an `extra={...}` may add to a record that JSON lines carry as their own keys.
STRUCTURED_FIELDS = ("request_id", "method", "route", "path", "model", "status", "latency_ms",
                     "images", "replica")  # fmt: skip


def escape_controls(text: str) -> str:
    def escaped(match: re.Match[str]) -> str:
        character = match.group()
        return {"\n": "\\n", "\r": "\\r", "\t": "\\t"}.get(character, f"\\x{ord(character):02x}")

    return _CONTROL.sub(escaped, text)


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802 (logging's name)
        return escape_controls(super().formatMessage(record))


class JSONFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in STRUCTURED_FIELDS:
            if hasattr(record, name):
                entry[name] = getattr(record, name)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(entry, default=str).decode()


def configure_logging(level: str, log_format: str = "text") -> None:
    """Root handler on stderr with the chosen format; uvicorn's loggers propagate to it."""
    handler = logging.StreamHandler()
    handler.setFormatter(JSONFormatter() if log_format == "json" else TextFormatter())
    root = logging.getLogger()
    for existing in list(root.handlers):
        root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error"):
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True
    if level.upper() != "DEBUG":
        # The MCP SDK's session manager says it started and stopped: nothing to act on.
        logging.getLogger("mcp").setLevel(logging.WARNING)
