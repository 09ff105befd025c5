"""``--json``: a command's results as one JSON document on stdout, for programs.

The document is ``{"command": ..., "results": [...], "error": ..., "exit_status": N}``.
Each result is the result object the text renderer would print, as an object with
``"type"`` (its class name: ``ConnectReport``, ``ProbeSection``...) and its fields, nested
the same way; times are ISO 8601 strings, tuples are lists.  ``error`` is ``null`` or
``{"what", "cause", "hint", "code", "alert"}`` -- the three sentences and the stable code
of the text form's ``error:`` / ``likely cause:`` / ``fix:`` lines.  Field names are
kept stable; new fields may be added.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import threading
from typing import Any, TextIO

from ._common import ErrorInfo, error_info


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {"type": type(value).__name__,
                **{f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}}
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, datetime.datetime | datetime.date):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.hex()
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)


class JsonRenderer:
    """Collects results (and an error) and writes them as one JSON document."""

    def __init__(self, out: TextIO, command: str) -> None:
        self.out = out
        self.command = command
        self.results: list[Any] = []
        self.failure: ErrorInfo | None = None
        self._lock = threading.Lock()

    def __call__(self, result: object) -> None:
        with self._lock:
            self.results.append(_plain(result))

    def error(self, err: BaseException | ErrorInfo) -> None:
        self.failure = error_info(err)

    def finish(self, status: int) -> None:
        document = {"command": self.command, "results": self.results,
                    "error": _plain(self.failure), "exit_status": status}
        json.dump(document, self.out, indent=2)
        self.out.write("\n")
        self.out.flush()
