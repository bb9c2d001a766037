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
from datetime import datetime
from typing import Any

from airflow_provider_commpeak._input import send_window as wall_clock
from airflow_provider_commpeak._input.bloom import BloomSet
from airflow_provider_commpeak._input.message import DUPLICATE, SUPPRESSED, WAITING, Message
from airflow_provider_commpeak._input.phones import PhoneProblem, country_calling_code, mask_digit_runs, normalize_phone
from airflow_provider_commpeak._input.records import (
    Record,
    as_storage_path,
    detect_format,
    is_file_source,
    iter_records,
    open_path,
)
from airflow_provider_commpeak._input.safeguards import Safeguards, describe_destination, iter_suppressed
from airflow_provider_commpeak._input.segments import SegmentCount, count_segments, ucs2_reason
from airflow_provider_commpeak._input.send_window import time_zones_of
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
    :param suppressed: Of ``messages``, how many are to numbers on the suppression list: not sent
        (reported ``SUPPRESSED``); ``segments`` leaves them out.
    :param segments_by_code: ``segments`` per country calling code.
    :param segments_before_smart_encoding: With smart encoding, the segments the texts would take
        without it (``None`` without smart encoding).
    :param cost_by_code: With prices, the estimated cost per country calling code.
    :param estimated_cost: With prices, the estimated cost in all (of the priced segments).
    :param unpriced_segments: With prices, segments to calling codes without a price (and no default).
    :param waiting: With a send window, messages whose recipients' window is closed now (held back).
    :param window_closes_at: With a send window, when it first closes for a message sendable now.
    :param window_next_open: With a send window, when it next opens for a message held back.
    """

    messages: int = 0
    segments: int = 0
    encodings: Counter[str] = field(default_factory=Counter)
    country_codes: Counter[str] = field(default_factory=Counter)
    given_ids: int = 0
    duplicates: int = 0
    ucs2_reasons: dict[str, str] = field(default_factory=dict)
    suppressed: int = 0
    segments_by_code: Counter[str] = field(default_factory=Counter)
    segments_before_smart_encoding: int | None = None
    cost_by_code: dict[str, float] = field(default_factory=dict)
    estimated_cost: float | None = None
    unpriced_segments: Counter[str] = field(default_factory=Counter)
    waiting: int = 0
    window_closes_at: datetime | None = None
    window_next_open: datetime | None = None

    def to_dict(self) -> dict[str, Any]:
        """The JSON-able form (a dry run's XCom); the safeguards' figures only when they apply."""
        data: dict[str, Any] = {
            "dry_run": True,
            "messages": self.messages,
            "segments": self.segments,
            "encodings": dict(self.encodings),
            "country_codes": dict(self.country_codes.most_common()),
            "given_ids": self.given_ids,
            "duplicates": self.duplicates,
            "ucs2_reasons": dict(self.ucs2_reasons),
        }
        if self.suppressed:
            data["suppressed"] = self.suppressed
        if self.segments_before_smart_encoding is not None:
            data["segments_before_smart_encoding"] = self.segments_before_smart_encoding
        if self.waiting or self.window_closes_at is not None:
            data["sendable_now"] = self.messages - self.waiting
            data["waiting_for_window"] = self.waiting
            data["window_next_open"] = None if self.window_next_open is None else self.window_next_open.isoformat()
        if self.estimated_cost is not None:
            data["segments_by_code"] = dict(self.segments_by_code.most_common())
            data["cost_by_code"] = dict(self.cost_by_code)
            data["estimated_cost"] = self.estimated_cost
            data["unpriced_segments"] = dict(self.unpriced_segments)
        return data

    def describe(self) -> str:
        """``"3 message(s), 4 SMS segment(s) (4 UCS-2); by country code +972: 2, +44: 1"``."""
        top = ", ".join(f"+{code}: {n:,}" for code, n in self.country_codes.most_common(5))
        encodings = ", ".join(f"{n:,} {name}" for name, n in sorted(self.encodings.items()))
        text = f"{self.messages:,} message(s), {self.segments:,} SMS segment(s) ({encodings}); by country code {top}"
        if self.duplicates:
            text += f"; {self.duplicates:,} duplicate(s) (same number and text as an earlier message) not sent"
        if self.suppressed:
            text += f"; {self.suppressed:,} to numbers on the suppression list not sent"
        if self.waiting:
            opens = self.window_next_open.isoformat(timespec="minutes") if self.window_next_open else "?"
            text += f"; {self.messages - self.waiting:,} can go now, {self.waiting:,} wait for their send window (from {opens})"
        if self.segments_before_smart_encoding is not None:
            text += (
                f"; smart encoding: {self.segments_before_smart_encoding:,} segment(s) before, {self.segments:,} after"
            )
        if self.estimated_cost is not None:
            costs = ", ".join(
                f"+{code}: {cost:,.2f}" for code, cost in sorted(self.cost_by_code.items(), key=lambda i: -i[1])[:5]
            )
            text += f"; estimated cost {self.estimated_cost:,.2f} ({costs})"
            if self.unpriced_segments:
                text += f", {sum(self.unpriced_segments.values()):,} segment(s) without a price"
        if self.ucs2_reasons:
            shown = "; ".join(f"{where}: {why}" for where, why in list(self.ucs2_reasons.items())[:5])
            text += f"; UCS-2 because of {shown}"
        return text

    def add(self, message: Message, count: SegmentCount, where: str) -> None:
        if count.encoding == "UCS-2" and len(self.ucs2_reasons) < MAX_UCS2_REASONS:
            self.ucs2_reasons[where] = ucs2_reason(message.message_content)
        code = country_calling_code(message.recipient_phone)
        self.messages += 1
        self.segments += count.segments
        self.segments_by_code[code] += count.segments
        self.encodings[count.encoding] += 1
        self.country_codes[code] += 1
        self.given_ids += bool(message.internal_id)

    def take_out(self, message: Message) -> None:
        """A counted message that will not be sent: its segments leave the totals."""
        segments = count_segments(message.message_content).segments
        self.segments -= segments
        self.segments_by_code[country_calling_code(message.recipient_phone)] -= segments


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
        left_out: dict[int, str] | None = None,
    ) -> None:
        self._rows = rows
        self.stats = stats
        self._namespace = namespace
        self._repeated = repeated
        #: Positions (in iteration order) of the messages not to send, each with where it is and where
        #: the earlier message it repeats is (``{5: ("line 7", "line 3")}``).
        self.duplicates: dict[int, tuple[str, str]] = duplicates or {}
        #: Positions of the messages not to send, each with its error (``DUPLICATE``, ``SUPPRESSED``).
        self.left_out: dict[int, str] = left_out or {}

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
    safeguards: Safeguards | None = None,
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
    :param safeguards: Countries, spend caps, an opt-out footer, smart encoding, a suppression list.
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
        found = _first_pass(
            iter_records(source, source_format),
            rows,
            default_sender=default_sender,
            default_region=default_region,
            reserved_id_prefix=f"{id_namespace}-" if id_namespace else None,
            expected=expected,
            max_segments=max_segments,
            find_duplicates=not allow_duplicates,
            safeguards=safeguards,
        )
        rows.seal()
        stats, problems = found.stats, found.problems
        if found.id_candidates and len(problems) < MAX_KEPT_PROBLEMS:
            problems.extend(_duplicate_problems(rows, found.id_candidates))
        if stats.messages == 0 and not problems and not found.extra and not found.refused:
            problems.append("the source holds no messages" if is_file else "the list of messages is empty")
        suppressed: set[str] = set()
        if found.phones is not None and safeguards is not None:
            suppressed, unreadable = _suppressed_numbers(safeguards.suppression_path, found.phones, default_region)
            problems.extend(unreadable)
        if problems or found.extra:
            if found.extra:
                problems.append(f"... and {found.extra} more problem(s) not listed")
            raise CommPeakValidationError(problems)
        left_out, duplicates = _left_out(rows, found.same_candidates, suppressed, stats)
        stats.waiting -= len(left_out.keys() & found.waiting.keys())  # left out for good: not waiting
        left_out = {**found.waiting, **left_out}
        if safeguards is not None:
            problems.extend(_spend_problems(stats, safeguards))
            if problems:
                raise CommPeakValidationError(problems)
    except BaseException:
        rows.close()
        raise
    return StagedMessages(rows, stats, id_namespace, found.repeated, duplicates, left_out)


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


@dataclass
class _FirstPass:
    """What the validating pass found besides the staged rows."""

    stats: StageStats = field(default_factory=StageStats)
    repeated: set[bytes] = field(default_factory=set)
    id_candidates: set[str] = field(default_factory=set)
    same_candidates: set[bytes] = field(default_factory=set)
    problems: list[str] = field(default_factory=list)
    extra: int = 0
    #: Numbers refused by a country rule: ``(destination, why) -> [count, first positions]``.
    refused: dict[tuple[str, str], list[Any]] = field(default_factory=dict)
    #: The audience's numbers, when a suppression list is to be checked against them.
    phones: BloomSet | None = None
    #: Positions held back for their send window.
    waiting: dict[int, str] = field(default_factory=dict)

    def problem(self, found: list[str]) -> None:
        if len(self.problems) < MAX_KEPT_PROBLEMS:
            self.problems.extend(found)
        else:
            self.extra += len(found)


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
    safeguards: Safeguards | None,
) -> _FirstPass:
    """Validate and stage each record; flag candidate duplicate ids, repeated contents and messages."""
    found = _FirstPass()
    stats = found.stats
    given_ids, contents = BloomSet(expected), BloomSet(expected)
    same = BloomSet(expected) if find_duplicates else None
    if safeguards is not None and safeguards.suppression_path is not None:
        found.phones = BloomSet(expected)
    window = safeguards.send_window if safeguards is not None else None
    now = wall_clock.utcnow()
    verdicts: dict[tuple[str, ...], tuple[bool, datetime | None]] = {}
    for record in records:
        checked = check_record(
            record,
            default_sender=default_sender,
            default_region=default_region,
            reserved_id_prefix=reserved_id_prefix,
        )
        if isinstance(checked, list):
            found.problem(checked)
            continue
        if safeguards is not None:
            refusal = safeguards.refusal(checked.recipient_phone)
            if refusal is not None:
                entry = found.refused.setdefault((describe_destination(checked.recipient_phone), refusal), [0, []])
                entry[0] += 1
                if len(entry[1]) < 3:
                    entry[1].append(record.where)
                continue
            final_text = safeguards.text(checked.message_content)
            if safeguards.smart_encoding:
                before = count_segments(safeguards.text(checked.message_content, smart=False)).segments
                stats.segments_before_smart_encoding = (stats.segments_before_smart_encoding or 0) + before
            checked = checked._replace(message_content=final_text)
        count = count_segments(checked.message_content)
        if max_segments is not None and count.segments > max_segments:
            found.problem(
                [
                    f"{record.where}: message_content takes {count.segments} SMS segments ({count.encoding}), "
                    f"more than max_segments={max_segments}"
                    + (" (opt_out_text included)" if safeguards is not None and safeguards.opt_out_text else "")
                ]
            )
            continue
        if not checked.internal_id:
            key = content_key(checked)
            if contents.add(key):
                found.repeated.add(key)
        elif given_ids.add(checked.internal_id):
            found.id_candidates.add(checked.internal_id)
        if same is not None and same.add(key := recipient_text_key(checked)):
            found.same_candidates.add(key)
        if window is not None:
            zones = time_zones_of(checked.recipient_phone)
            if zones not in verdicts:
                is_open = window.is_open(zones, now)
                verdicts[zones] = (is_open, window.closes_at(zones, now) if is_open else window.next_open(zones, now))
            is_open, when = verdicts[zones]
            if when is None:
                why = (
                    "whose time zone is unknown"
                    if not zones
                    else "whose send window never opens in all their time zones"
                )
                entry = found.refused.setdefault((describe_destination(checked.recipient_phone), why), [0, []])
                entry[0] += 1
                if len(entry[1]) < 3:
                    entry[1].append(record.where)
                continue
            if is_open:
                stats.window_closes_at = min(filter(None, (stats.window_closes_at, when)))
            else:
                found.waiting[stats.messages] = WAITING
                stats.waiting += 1
                stats.window_next_open = min(filter(None, (stats.window_next_open, when)))
        if found.phones is not None:
            found.phones.add(checked.recipient_phone)
        stats.add(checked, count, record.where)
        rows.append((record.where, *checked), record.line)
    for (destination, why), (n, positions) in sorted(found.refused.items(), key=lambda item: -item[1][0]):
        found.problem([f"{n:,} message(s) to {destination}, {why} (e.g. {', '.join(positions)})"])
    if window is not None and found.refused:
        found.problem(["(quiet hours need each number's time zone; remove or fix those numbers)"])
    return found


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


def _left_out(
    rows: _Rows, candidates: set[bytes], suppressed: set[str], stats: StageStats
) -> tuple[dict[int, str], dict[int, tuple[str, str]]]:
    """
    The messages not to send, by position: ``SUPPRESSED`` (their number is on the suppression list)
    or ``DUPLICATE`` (an earlier message has their number and text); counted in ``stats``, their
    segments taken out. Also, for the log, where each duplicate and its first are.
    """
    left_out: dict[int, str] = {}
    duplicates: dict[int, tuple[str, str]] = {}
    if not candidates and not suppressed:
        return left_out, duplicates
    first_seen: dict[bytes, str] = {}
    for position, row in enumerate(rows):
        message = Message._make(row[1:])
        if message.recipient_phone in suppressed:
            left_out[position] = SUPPRESSED
            stats.suppressed += 1
            stats.take_out(message)
            continue
        key = recipient_text_key(message)
        if key not in candidates:
            continue
        if key in first_seen:
            left_out[position] = DUPLICATE
            duplicates[position] = (row[0], first_seen[key])
            stats.duplicates += 1
            stats.take_out(message)
        else:
            first_seen[key] = row[0]
    return left_out, duplicates


def _suppressed_numbers(path: Any, audience: BloomSet, default_region: str | None) -> tuple[set[str], list[str]]:
    """
    The audience's numbers that the suppression list holds, read streaming: a listed number counts
    only if the audience's Bloom filter may hold it, so memory follows the overlap, not the list.
    An entry that is not a number is a problem (an opt-out that cannot be read cannot be honoured).
    """
    name = mask_digit_runs(str(path)[:200])
    found: set[str] = set()
    unreadable: list[int] = []
    try:
        for line, raw in iter_suppressed(as_storage_path(path)):
            try:
                number = normalize_phone(raw, default_region)
            except PhoneProblem:
                unreadable.append(line)
                continue
            if number in audience:
                found.add(number)
    except OSError as exc:
        return found, [f"the suppression list {name!r} cannot be read ({type(exc).__name__})"]
    if not unreadable:
        return found, []
    shown = ", ".join(str(n) for n in unreadable[:10])
    return found, [
        f"the suppression list {name!r} has {len(unreadable):,} entr(ies) that are not phone numbers "
        f"(line(s) {shown}{', ...' if len(unreadable) > 10 else ''}); a national number needs default_region"
    ]


def _spend_problems(stats: StageStats, safeguards: Safeguards) -> list[str]:
    """Count the estimated cost into ``stats``; the spend caps it breaks."""
    problems = []
    if safeguards.prices:
        for code, segments in stats.segments_by_code.items():
            price = safeguards.price(code)
            if price is None:
                stats.unpriced_segments[code] = segments
            else:
                stats.cost_by_code[code] = round(segments * price, 6)
        stats.estimated_cost = round(sum(stats.cost_by_code.values()), 6)
    cap = safeguards.max_total_segments
    if cap is not None and stats.segments > cap:
        problems.append(f"the campaign takes {stats.segments:,} SMS segments, more than max_total_segments={cap:,}")
    if safeguards.max_cost is not None:
        if stats.unpriced_segments:
            codes = ", ".join(f"+{code}" for code in sorted(stats.unpriced_segments))
            problems.append(f"max_cost: no price for {codes} (add them to prices, or a 'default')")
        elif (stats.estimated_cost or 0) > safeguards.max_cost:
            problems.append(
                f"the campaign's estimated cost {stats.estimated_cost:,.2f} is above max_cost={safeguards.max_cost:,.2f}"
            )
    return problems
