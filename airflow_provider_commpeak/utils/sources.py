"""Reading messages from files (CSV or JSON Lines, local or any ObjectStoragePath), one at a time."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

#: File suffixes and the format each means.
FORMATS = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl"}


@dataclass(frozen=True)
class InvalidRecord:
    """A line of the file that is not a message at all (validation reports its ``reason``)."""

    reason: str


def as_storage_path(value: Any) -> Any:
    """A URL with a scheme (``s3://...``) becomes an ObjectStoragePath; a plain path stays as it is."""
    if isinstance(value, str) and value.startswith("file://"):
        return value[len("file://") :]
    if isinstance(value, str) and "://" in value:
        from airflow.providers.common.compat.sdk import ObjectStoragePath

        return ObjectStoragePath(value)
    return value


def open_path(path: Any, mode: str = "r") -> IO[Any]:
    """Open a local path (``str`` or ``Path``) or anything with ``.open()``, e.g. an ObjectStoragePath."""
    if isinstance(path, (str, Path)):
        return open(Path(path), mode, encoding="utf-8", newline="" if "r" in mode else None)
    return path.open(mode)


def detect_format(path: Any, fmt: str | None = None) -> str:
    """``csv`` or ``jsonl``, from ``fmt`` or the file's suffix."""
    if fmt:
        if fmt not in ("csv", "jsonl"):
            raise ValueError(f"format must be 'csv' or 'jsonl', got {fmt!r}")
        return fmt
    suffix = Path(str(path)).suffix.lower()
    if suffix not in FORMATS:
        raise ValueError(f"cannot tell the format of {path}: name it .csv or .jsonl, or pass the format")
    return FORMATS[suffix]


def read_records(path: Any, fmt: str | None = None) -> Iterator[Any]:
    """
    Yield each record of the file, streaming.

    CSV needs a header naming the columns (``recipient_phone``, ``message_content``, and optionally
    ``sender`` and ``internal_id``); empty cells count as missing. JSON Lines holds one object per
    line; blank lines are skipped; a line that is not JSON yields an :class:`InvalidRecord`.
    """
    kind = detect_format(path, fmt)
    with open_path(path, "r") as handle:
        if kind == "csv":
            for row in csv.DictReader(handle):
                yield {key: value for key, value in row.items() if value not in (None, "")}
            return
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                yield json.loads(line)
            except ValueError:
                yield InvalidRecord(f"line {number} is not valid JSON")
