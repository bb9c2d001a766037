"""
Staging: every message of a send validated before the first request, then handed out ready to send.

The source is read once. A list is staged in memory; a file is staged to a local spool file (about
120 bytes per message, deleted afterwards), so an ``s3://`` audience is downloaded once and the send
pass sends exactly what validation counted, even if the source changes meanwhile.

Ids. A message without ``internal_id`` gets ``<namespace>-<24 hex>``, a hash of its content
(number, sender, text) and of its *occurrence* among identical messages: the same messages give the
same ids whatever their order. Duplicates among given ids, and repeated contents, are found with a
Bloom filter (16 MiB at most) plus an exact check of the few candidates it flags, so memory does not
grow with the campaign.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from array import array
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from airflow_provider_commpeak._input.message import Message
from airflow_provider_commpeak._input.phones import country_calling_code, mask_digit_runs
from airflow_provider_commpeak._input.records import Record, detect_format, is_file_source, iter_records, open_path
from airflow_provider_commpeak._input.segments import SegmentCount, count_segments, ucs2_reason
from airflow_provider_commpeak._input.validation import check_record, show_id
from airflow_provider_commpeak.exceptions import CommPeakValidationError

#: Problems kept while validating; past this only their number is counted.
MAX_KEPT_PROBLEMS = 1000
#: Messages whose UCS-2 reason a dry run names (the first ones).
MAX_UCS2_REASONS = 20
#: Duplicates whose positions are logged (the first ones).
MAX_LOGGED_DUPLICATES = 20


@dataclass
class StageStats:
    """
    What the staged messages hold, counted while validating: a dry run's answer.

    :param messages: Valid messages.
    :param segments: SMS segments they take in all (what carriers bill).
    :param encodings: Messages per encoding, ``GSM-7`` or ``UCS-2``.
    :param country_codes: Messages per country calling code.
    :param given_ids: Messages that named their own ``internal_id``.
    :param duplicates: Of ``messages``, how many repeat an earlier one's number and text: not sent
        (reported ``DUPLICATE``) unless duplicates are allowed; ``segments`` leaves them out.
    :param ucs2_reasons: For the first messages that need UCS-2: where (``"line 7"``) and the first
        character that forces it (``"U+2019 at position 12"``).
    """

    messages: int = 0
    segments: int = 0
    encodings: Counter[str] = field(default_factory=Counter)
    country_codes: Counter[str] = field(default_factory=Counter)
    given_ids: int = 0
    duplicates: int = 0
    ucs2_reasons: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The JSON-able form (a dry run's XCom)."""
        return {
            "dry_run": True,
            "messages": self.messages,
            "segments": self.segments,
            "encodings": dict(self.encodings),
            "country_codes": dict(self.country_codes.most_common()),
            "given_ids": self.given_ids,
            "duplicates": self.duplicates,
            "ucs2_reasons": dict(self.ucs2_reasons),
        }

    def describe(self) -> str:
        """``"3 message(s), 4 SMS segment(s) (4 UCS-2); by country code +972: 2, +44: 1"``."""
        top = ", ".join(f"+{code}: {n:,}" for code, n in self.country_codes.most_common(5))
        encodings = ", ".join(f"{n:,} {name}" for name, n in sorted(self.encodings.items()))
        text = f"{self.messages:,} message(s), {self.segments:,} SMS segment(s) ({encodings}); by country code {top}"
        if self.duplicates:
            text += f"; {self.duplicates:,} duplicate(s) (same number and text as an earlier message) not sent"
        if self.ucs2_reasons:
            shown = "; ".join(f"{where}: {why}" for where, why in list(self.ucs2_reasons.items())[:5])
            text += f"; UCS-2 because of {shown}"
        return text

    def add(self, message: Message, count: SegmentCount, where: str) -> None:
        if count.encoding == "UCS-2" and len(self.ucs2_reasons) < MAX_UCS2_REASONS:
            self.ucs2_reasons[where] = ucs2_reason(message.message_content)
        self.messages += 1
        self.segments += count.segments
        self.encodings[count.encoding] += 1
        self.country_codes[country_calling_code(message.recipient_phone)] += 1
        self.given_ids += bool(message.internal_id)


class BloomSet:
    """
    A Bloom filter: ``add`` answers whether the key was *maybe* added before (never a false "no").

    Sized for ``expected`` keys (32 to 64 bits each, 4 hashes) at a false-positive rate under one in
    two thousand, at most 16 MiB (a hit is only a candidate: the caller checks it exactly). Keys are
    hashed with Python's ``hash``, salted per process, so which keys collide differs between runs.
    """

    HASHES = 4

    def __init__(self, expected: int | None) -> None:
        bits = 1 << 27 if expected is None else min(1 << 27, max(1 << 16, _next_power_of_two(expected * 32)))
        self._mask = bits - 1
        self._bits = bytearray(bits // 8)

    def add(self, key: object) -> bool:
        digest = hash(key) & 0xFFFF_FFFF_FFFF_FFFF
        low, high = digest & 0xFFFF_FFFF, (digest >> 32) | 1
        seen = True
        for i in range(self.HASHES):
            index = (low + i * high) & self._mask
            byte, bit = index >> 3, 1 << (index & 7)
            if not self._bits[byte] & bit:
                seen = False
                self._bits[byte] |= bit
        return seen


def _next_power_of_two(n: int) -> int:
    return 1 << max(n - 1, 1).bit_length()


def content_key(message: Message) -> bytes:
    """What identifies a message's content (number, sender, text), for generated ids."""
    text = f"{message.recipient_phone}\x1f{message.sender}\x1f{message.message_content}"
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).digest()


def recipient_text_key(message: Message) -> bytes:
    """What makes two messages the same SMS to the same person (number and text; not the sender)."""
    text = f"{message.recipient_phone}\x1f{message.message_content}"
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).digest()


def generated_id(namespace: str, key: bytes, occurrence: int) -> str:
    """The id of the ``occurrence``-th message (0 for the first) with content ``key``."""
    return f"{namespace}-{hashlib.sha256(key + occurrence.to_bytes(8, 'big')).hexdigest()[:24]}"


class _Rows:
    """Where staged messages wait, as ``(where, *message)`` rows: a list in memory, or a spool file."""

    def __init__(self, spool: bool) -> None:
        self._list: list[tuple[Any, ...]] | None = None if spool else []
        self._dir = tempfile.mkdtemp(prefix="commpeak-stage-") if spool else None
        self._path = os.path.join(self._dir, "messages.jsonl") if self._dir else None
        self._writer = open(self._path, "w", encoding="utf-8") if self._path else None  # noqa: SIM115
        #: The file line each row starts on (4 bytes a message; files only).
        self.lines: array[int] | None = array("L") if spool else None

    def append(self, row: tuple[Any, ...], line: int | None = None) -> None:
        if self.lines is not None:
            self.lines.append(line or 0)
        if self._list is not None:
            self._list.append(row)
        else:
            assert self._writer is not None
            self._writer.write(json.dumps(row, ensure_ascii=False) + "\n")

    def seal(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def __iter__(self) -> Iterator[tuple[Any, ...]]:
        if self._list is not None:
            yield from self._list
            return
        assert self._path is not None
        with open(self._path, encoding="utf-8") as handle:
            for line in handle:
                yield tuple(json.loads(line))

    def close(self) -> None:
        self.seal()
        self._list = []
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None


class StagedMessages:
    """
    Every message of a send, validated. Iterate for :class:`Message`\\ s in input order, ids final.

    Use as a context manager (or call :meth:`close`) to delete the spool file.
    """

    def __init__(
        self,
        rows: _Rows,
        stats: StageStats,
        namespace: str | None,
        repeated: set[bytes],
        duplicates: dict[int, tuple[str, str]] | None = None,
    ) -> None:
        self._rows = rows
        self.stats = stats
        self._namespace = namespace
        self._repeated = repeated
        #: Positions (in iteration order) of the messages not to send, each with where it is and where
        #: the earlier message it repeats is (``{5: ("line 7", "line 3")}``).
        self.duplicates: dict[int, tuple[str, str]] = duplicates or {}

    def __len__(self) -> int:
        return self.stats.messages

    def __iter__(self) -> Iterator[Message]:
        occurrences: Counter[bytes] = Counter()
        for row in self._rows:
            message = Message._make(row[1:])
            if not message.internal_id:
                key = content_key(message)
                occurrence = 0
                if key in self._repeated:
                    occurrence = occurrences[key]
                    occurrences[key] += 1
                assert self._namespace is not None
                message = message._replace(internal_id=generated_id(self._namespace, key, occurrence))
            yield message

    def line_of(self, position: int) -> int | None:
        """The file line the message at ``position`` starts on; ``None`` for a list."""
        lines = self._rows.lines
        return lines[position] or None if lines is not None and position < len(lines) else None

    def close(self) -> None:
        self._rows.close()

    def __enter__(self) -> StagedMessages:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def stage_messages(
    source: Any,
    *,
    source_format: str | None = None,
    default_sender: str | None = None,
    default_region: str | None = None,
    id_namespace: str | None = None,
    max_segments: int | None = None,
    allow_duplicates: bool = False,
) -> StagedMessages:
    """
    Validate every message of ``source`` and stage it; raise one error listing every problem.

    :param source: An iterable of message mappings, or a CSV / JSON Lines file (a path, or an
        ObjectStoragePath).
    :param source_format: ``csv`` or ``jsonl`` when a file's suffix does not say.
    :param default_sender: The sender of messages that name none.
    :param default_region: The region of national numbers, e.g. ``"IL"``.
    :param id_namespace: The prefix of generated ids; ``None`` makes a missing ``internal_id`` an error.
    :param max_segments: Refuse a text that takes more SMS segments than this.
    :param allow_duplicates: Send a message repeating an earlier one's number and text too; by
        default it is staged but listed in ``duplicates`` (the pipeline reports it ``DUPLICATE``).
    :raises CommPeakValidationError: Listing every problem (the first thousand, and how many more).
    """
    is_file = is_file_source(source)
    if not is_file and (isinstance(source, (bytes, dict)) or not isinstance(source, Iterable)):
        raise CommPeakValidationError([f"expected a list of messages, got {type(source).__name__}"])
    if is_file:
        _check_file(source, source_format)
    expected = len(source) if hasattr(source, "__len__") and not is_file else None
    rows = _Rows(spool=is_file)
    try:
        stats, repeated, id_candidates, same_candidates, problems, extra = _first_pass(
            iter_records(source, source_format),
            rows,
            default_sender=default_sender,
            default_region=default_region,
            reserved_id_prefix=f"{id_namespace}-" if id_namespace else None,
            expected=expected,
            max_segments=max_segments,
            find_duplicates=not allow_duplicates,
        )
        rows.seal()
        if id_candidates and len(problems) < MAX_KEPT_PROBLEMS:
            problems.extend(_duplicate_problems(rows, id_candidates))
        if stats.messages == 0 and not problems and not extra:
            problems.append("the source holds no messages" if is_file else "the list of messages is empty")
        if problems or extra:
            if extra:
                problems.append(f"... and {extra} more problem(s) not listed")
            raise CommPeakValidationError(problems)
        duplicates = _duplicate_messages(rows, same_candidates, stats) if same_candidates else {}
    except BaseException:
        rows.close()
        raise
    return StagedMessages(rows, stats, id_namespace, repeated, duplicates)


def _check_file(path: Any, source_format: str | None) -> None:
    """Refuse a file whose format cannot be told or that cannot be opened, before reading anything."""
    name = mask_digit_runs(str(path)[:200])
    try:
        detect_format(path, source_format)
    except ValueError:
        raise CommPeakValidationError(
            [f"the messages file {name!r}: name it .csv or .jsonl, or pass its format"]
        ) from None
    try:
        open_path(path, "rb").close()
    except OSError as exc:
        raise CommPeakValidationError([f"the messages file {name!r} cannot be read ({type(exc).__name__})"]) from None


def _first_pass(
    records: Iterable[Record],
    rows: _Rows,
    *,
    default_sender: str | None,
    default_region: str | None,
    reserved_id_prefix: str | None,
    expected: int | None,
    max_segments: int | None,
    find_duplicates: bool,
) -> tuple[StageStats, set[bytes], set[str], set[bytes], list[str], int]:
    """Validate and stage each record; flag candidate duplicate ids, repeated contents and messages."""
    stats = StageStats()
    given_ids, contents = BloomSet(expected), BloomSet(expected)
    same = BloomSet(expected) if find_duplicates else None
    id_candidates: set[str] = set()
    same_candidates: set[bytes] = set()
    repeated: set[bytes] = set()
    problems: list[str] = []
    extra = 0
    for record in records:
        checked = check_record(
            record,
            default_sender=default_sender,
            default_region=default_region,
            reserved_id_prefix=reserved_id_prefix,
        )
        count = count_segments(checked.message_content) if not isinstance(checked, list) else None
        if count is not None and max_segments is not None and count.segments > max_segments:
            checked = [
                f"{record.where}: message_content takes {count.segments} SMS segments ({count.encoding}), "
                f"more than max_segments={max_segments}"
            ]
        if isinstance(checked, list):
            if len(problems) < MAX_KEPT_PROBLEMS:
                problems.extend(checked)
            else:
                extra += len(checked)
            continue
        assert count is not None
        if not checked.internal_id:
            key = content_key(checked)
            if contents.add(key):
                repeated.add(key)
        elif given_ids.add(checked.internal_id):
            id_candidates.add(checked.internal_id)
        if same is not None and same.add(key := recipient_text_key(checked)):
            same_candidates.add(key)
        stats.add(checked, count, record.where)
        rows.append((record.where, *checked), record.line)
    return stats, repeated, id_candidates, same_candidates, problems, extra


def _duplicate_problems(rows: _Rows, candidates: set[str]) -> list[str]:
    """Exact check of the candidate duplicate ids: one problem per real duplicate."""
    first_seen: dict[str, str] = {}
    problems = []
    for where, internal_id, *_ in rows:
        if internal_id not in candidates:
            continue
        if internal_id in first_seen:
            problems.append(f"{where}: internal_id {show_id(internal_id)} duplicates {first_seen[internal_id]}")
        else:
            first_seen[internal_id] = where
    return problems


def _duplicate_messages(rows: _Rows, candidates: set[bytes], stats: StageStats) -> dict[int, tuple[str, str]]:
    """
    Exact check of the candidate repeats: ``{position: (where, where the first one is)}`` for each message
    whose number and text an earlier message already has; counted in ``stats`` (its segments out).
    """
    first_seen: dict[bytes, str] = {}
    duplicates: dict[int, tuple[str, str]] = {}
    for position, row in enumerate(rows):
        message = Message._make(row[1:])
        key = recipient_text_key(message)
        if key not in candidates:
            continue
        if key in first_seen:
            duplicates[position] = (row[0], first_seen[key])
            stats.duplicates += 1
            stats.segments -= count_segments(message.message_content).segments
        else:
            first_seen[key] = row[0]
    return duplicates
