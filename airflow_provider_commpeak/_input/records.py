"""
Reading messages from where users keep them: a list, or a CSV / JSON Lines file (local or any
ObjectStoragePath), one record at a time.

Files are read as bytes and decoded line by line, so an encoding error names its line instead of
ending the read with a bare ``UnicodeDecodeError``; a UTF-8 byte order mark (what Excel writes) is
dropped; CSV is parsed strictly. No problem text ever quotes a cell: a file's cells are phone numbers
and message texts.
"""

from __future__ import annotations

import codecs
import csv
import json
import os
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from airflow_provider_commpeak._input.message import MESSAGE_FIELDS

REQUIRED_COLUMNS = ("recipient_phone", "message_content")

#: File suffixes and the format each means.
FORMATS = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl"}

#: The longest line a message file may hold (a message is a few hundred bytes; this bounds memory
#: when a file has no line breaks at all).
MAX_LINE_BYTES = 1024 * 1024

#: A line inside a quoted CSV cell that starts like a row of its own (a phone number, then a comma):
#: the mark of an unclosed quote swallowing the rows after it.
_ROW_LIKE = re.compile(r"^\s*\"?\s*\+?[\d][\d\s\-().]{5,}\"?\s*,")
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_ .-]{0,39}$")


@dataclass(frozen=True, slots=True)
class Record:
    """
    One record of the input, before validation.

    :param position: Its index among the input's records (0 for the first).
    :param line: The file line it starts on (1-based), or ``None`` for an in-memory input.
    :param fields: What it holds: a mapping for a well-formed record; for an in-memory input, the
        item as given (validation says what is wrong with it).
    :param problem: Why this line is not a record at all (a ragged CSV row, a line that is not
        JSON...); ``None`` when it is one.
    """

    position: int
    line: int | None
    fields: Any = None
    problem: str | None = None

    @property
    def where(self) -> str:
        """``"line 7"`` for a file, ``"message 5"`` for a list: how error texts name it."""
        return f"line {self.line}" if self.line is not None else f"message {self.position}"


def as_storage_path(value: Any) -> Any:
    """A URL with a scheme (``s3://...``) becomes an ObjectStoragePath; a plain path stays as it is."""
    if isinstance(value, str) and value.startswith("file://"):
        return value[len("file://") :]
    if isinstance(value, str) and "://" in value:
        from airflow.providers.common.compat.sdk import ObjectStoragePath

        return ObjectStoragePath(value)
    return value


def is_file_source(value: Any) -> bool:
    """Whether ``value`` names a file (a path string, a ``Path`` or an ObjectStoragePath)."""
    return isinstance(value, (str, os.PathLike)) or (hasattr(value, "open") and hasattr(value, "exists"))


def is_local(path: Any) -> bool:
    """A plain local path (``str``, ``Path``); an ObjectStoragePath (even ``file://``) is not one."""
    return isinstance(path, str) or (isinstance(path, os.PathLike) and not hasattr(path, "fs"))


def open_path(path: Any, mode: str = "r") -> IO[Any]:
    """
    Open a local path (``str`` or ``Path``) or anything with ``.open()``, e.g. an ObjectStoragePath.
    Writing a local file creates its missing folders.
    """
    binary = "b" in mode
    if is_local(path):
        if "w" in mode:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        if binary:
            return open(Path(path), mode)
        return open(Path(path), mode, encoding="utf-8", newline="" if "r" in mode else None)
    return path.open(mode)


def same_location(first: Any, second: Any) -> bool:
    """Whether two paths (local or ObjectStoragePath) name the same file."""
    if is_local(first) and is_local(second):
        return os.path.realpath(first) == os.path.realpath(second)
    return str(first).rstrip("/") == str(second).rstrip("/")


def path_exists(path: Any) -> bool:
    if is_local(path):
        return os.path.exists(path)
    return bool(path.exists())


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


def iter_records(source: Any, fmt: str | None = None) -> Iterator[Record]:
    """Yield each record of an in-memory iterable or of a file, streaming."""
    if is_file_source(source):
        yield from read_file_records(source, fmt)
        return
    for position, item in enumerate(source):
        yield Record(position, None, item)


def read_file_records(
    path: Any,
    fmt: str | None = None,
    *,
    columns: tuple[str, ...] = MESSAGE_FIELDS,
    required: tuple[str, ...] = REQUIRED_COLUMNS,
) -> Iterator[Record]:
    """
    Yield each record of a CSV or JSON Lines file, streaming.

    CSV needs a header naming the columns (``recipient_phone``, ``message_content``, optionally
    ``sender`` and ``internal_id``); empty cells count as missing. JSON Lines holds one object per
    line; blank lines are skipped. Problems come back as records with a ``problem``; a problem that
    leaves the rest of the file unreadable (a quote never closed) ends the read.
    """
    reader = file_format(detect_format(path, fmt)).read
    with open_path(path, "rb") as handle:
        yield from reader(_decoded_lines(handle), columns, required)


class _Line(str):
    """A decoded line that remembers why it could not be decoded, if it could not."""

    problem: str | None = None


def _binary_lines(handle: IO[bytes]) -> Iterator[bytes]:
    """Lines of at most :data:`MAX_LINE_BYTES`; a longer one is cut short and flagged by length."""
    while True:
        line = handle.readline(MAX_LINE_BYTES + 1)
        if not line:
            return
        if len(line) > MAX_LINE_BYTES and not line.endswith(b"\n"):
            while True:  # skip the rest of the overlong line
                rest = handle.readline(MAX_LINE_BYTES)
                if not rest or rest.endswith(b"\n"):
                    break
            yield b"\xff" * (MAX_LINE_BYTES + 1)  # decodes to a problem naming the length
            continue
        yield line


def _decoded_lines(handle: IO[bytes]) -> Iterator[_Line]:
    for number, raw in enumerate(_binary_lines(handle), 1):
        if number == 1 and raw.startswith(codecs.BOM_UTF8):
            raw = raw[len(codecs.BOM_UTF8) :]
        if len(raw) > MAX_LINE_BYTES:
            line = _Line("\n")
            line.problem = f"line {number} is longer than {MAX_LINE_BYTES // 1024} KiB"
            yield line
            continue
        try:
            yield _Line(raw.decode("utf-8"))
        except UnicodeDecodeError as exc:
            line = _Line("\n")
            line.problem = (
                f"line {number} is not UTF-8 text (byte {raw[exc.start]:#04x} at column {exc.start + 1}); "
                "save the file as UTF-8"
            )
            yield line


def _jsonl_records(lines: Iterable[_Line]) -> Iterator[Record]:
    position = 0
    for number, line in enumerate(lines, 1):
        if line.problem is None and not line.strip():
            continue
        if line.problem is not None:
            yield Record(position, number, problem=line.problem)
        else:
            try:
                value = json.loads(line)
            except RecursionError:
                yield Record(position, number, problem=f"line {number} is JSON nested too deep to read")
            except ValueError:
                yield Record(position, number, problem=f"line {number} is not valid JSON")
            else:
                if isinstance(value, Mapping):
                    yield Record(position, number, value)
                else:
                    yield Record(position, number, problem=f"line {number} is not a JSON object")
        position += 1


def _describe_column(name: str) -> str:
    return repr(name) if _IDENTIFIER.match(name) else "an unnamed column"


def _header_problems(header: list[str], columns: tuple[str, ...], required: tuple[str, ...]) -> list[str]:
    names = [name.strip() for name in header]
    if not any(name in columns for name in names):
        return [
            "line 1: the header names none of the columns "
            f"{', '.join(columns)} (a CSV file needs a header row naming its columns)"
        ]
    problems = []
    unknown = [name for name in names if name not in columns]
    if unknown:
        problems.append(
            f"line 1: unknown column(s) {', '.join(_describe_column(n) for n in unknown)} "
            f"(allowed: {', '.join(columns)})"
        )
    repeated = sorted({name for name in names if names.count(name) > 1 and name in columns})
    if repeated:
        problems.append(f"line 1: column(s) {', '.join(repeated)} appear more than once")
    missing = [name for name in required if name not in names]
    if missing:
        problems.append(f"line 1: the header lacks the column(s) {', '.join(missing)}")
    return problems


def _csv_error_hint(exc: csv.Error) -> str:
    """What a strict CSV parse error most likely means, in the user's terms."""
    text = str(exc)
    if "expected after" in text:
        return (
            "a quoted cell is followed by more text before the next comma; quote the whole cell and "
            'double each quote inside it ("he said ""hi""")'
        )
    if "end of data" in text or "EOF" in text:
        return "a quote is left open (the file ends inside a quoted cell)"
    return "is a quote left open?"


def _stray_quote_cell(raw: str) -> int | None:
    """
    The 1-based number of the first cell of a raw CSV record holding a quote without being quoted
    itself (``he said "hi"``: the csv module keeps such quotes as text), else ``None``.
    """
    cell, i, size = 1, 0, len(raw)
    while i <= size:
        if i < size and raw[i] == '"':  # a quoted cell: skip to its closing quote ("" is a quote)
            i += 1
            while i < size:
                if raw[i] == '"':
                    if i + 1 < size and raw[i + 1] == '"':
                        i += 2
                        continue
                    break
                i += 1
            i += 1
        end = raw.find(",", i)
        end = size if end < 0 else end
        if '"' in raw[i:end]:
            return cell
        i, cell = end + 1, cell + 1
    return None


def _csv_records(lines: Iterator[_Line], columns: tuple[str, ...], required: tuple[str, ...]) -> Iterator[Record]:
    decode_problems: list[tuple[int, str]] = []
    raw_record: list[str] = []

    def watched() -> Iterator[str]:
        for number, line in enumerate(lines, 1):
            if line.problem is not None:
                decode_problems.append((number, line.problem))
            raw_record.append(line)
            yield line

    reader = csv.reader(watched(), strict=True)
    try:
        header = next(reader, None)
    except csv.Error as exc:
        yield Record(0, 1, problem=f"line 1: the header row is not valid CSV ({exc})")
        return
    if header is None:
        return
    problems = [p for _, p in decode_problems] + _header_problems(header, columns, required)
    decode_problems.clear()
    if problems:
        for problem in problems:
            yield Record(0, 1, problem=problem)
        return
    names = [name.strip() for name in header]
    position, last_line = 0, reader.line_num
    while True:
        raw_record.clear()
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            yield Record(
                position,
                last_line + 1,
                problem=f"line {last_line + 1}: not valid CSV ({exc}); {_csv_error_hint(exc)}",
            )
            return
        first_line, last_line = last_line + 1, reader.line_num
        stray = _stray_quote_cell("".join(raw_record).rstrip("\r\n")) if '"' in "".join(raw_record) else None
        if decode_problems:
            for number, problem in decode_problems:
                yield Record(position, number, problem=problem)
            decode_problems.clear()
            position += 1
            continue
        if not row:
            continue
        if len(row) != len(names):
            yield Record(
                position,
                first_line,
                problem=f"line {first_line}: {len(row)} cell(s) where the header has {len(names)}",
            )
        elif stray is not None:
            yield Record(
                position,
                first_line,
                problem=(
                    f"line {first_line}: cell {stray} holds a quote but is not quoted, so the quote would be "
                    'sent as text; quote the whole cell and double each quote inside it ("he said ""hi""")'
                ),
            )
        elif last_line > first_line and any(_swallows_rows(cell) for cell in row):
            yield Record(
                position,
                first_line,
                problem=(
                    f"lines {first_line}-{last_line}: a quoted cell spans lines that look like rows of "
                    "their own; is a quote left open?"
                ),
            )
        else:
            yield Record(position, first_line, {n: v for n, v in zip(names, row, strict=True) if v != ""})
        position += 1


def _swallows_rows(cell: str) -> bool:
    """Whether a multi-line cell holds lines that look like CSV rows (an unclosed quote's victims)."""
    return any(_ROW_LIKE.match(line) for line in cell.splitlines()[1:])


# -- the table of file formats: each one's reader and writer --------------------------------------


def _read_jsonl(lines: Iterator[_Line], columns: tuple[str, ...], required: tuple[str, ...]) -> Iterator[Record]:
    return _jsonl_records(lines)


def _csv_writer(handle: IO[str], columns: tuple[str, ...]) -> Callable[[Mapping[str, Any]], None]:
    writer = csv.writer(handle)
    writer.writerow(columns)

    def write(row: Mapping[str, Any]) -> None:
        writer.writerow(["" if row.get(column) is None else row[column] for column in columns])

    return write


def _jsonl_writer(handle: IO[str], columns: tuple[str, ...]) -> Callable[[Mapping[str, Any]], None]:
    def write(row: Mapping[str, Any]) -> None:
        handle.write(json.dumps({column: row.get(column) for column in columns}) + "\n")

    return write


@dataclass(frozen=True)
class FileFormat:
    """
    One file format: how its records are read and how rows are written.

    :param read: ``(lines, columns, required) -> records``.
    :param writer: ``(text handle, columns) -> write(row)``; writes the header, if the format has one.
    """

    read: Callable[[Iterator[_Line], tuple[str, ...], tuple[str, ...]], Iterator[Record]]
    writer: Callable[[IO[str], tuple[str, ...]], Callable[[Mapping[str, Any]], None]]


FILE_FORMATS: dict[str, FileFormat] = {
    "csv": FileFormat(read=_csv_records, writer=_csv_writer),
    "jsonl": FileFormat(read=_read_jsonl, writer=_jsonl_writer),
}


def file_format(kind: str) -> FileFormat:
    """The reader and writer of ``kind``; any format not in the table is refused, never guessed."""
    try:
        return FILE_FORMATS[kind]
    except KeyError:
        raise ValueError(f"no reader or writer for the file format {kind!r}") from None
