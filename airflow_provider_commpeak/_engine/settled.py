"""
What earlier tries settled, held compactly: a retry of a million-message send reads its ledger into
about 45 bytes per message instead of a dict of result objects (about 500 bytes each).

An open-addressing hash table over flat arrays (slots of 4 bytes naming a row; rows in parallel
arrays): a row's key is a 64-bit hash of the ``internal_id`` (a false match needs two ids of one
send to share 64 bits: about 1 in 37 million for a million messages, and then the content
fingerprint check warns), its value the message's uuid (16 bytes when canonical), error code (an
index into the few distinct codes), content fingerprint, and every other field of a result as an
index into that field's distinct values.
"""

from __future__ import annotations

import hashlib
import uuid as uuid_module
from array import array
from typing import NamedTuple

from airflow_provider_commpeak._engine.report import MessageResult

_EMPTY = 0
_NO_FINGERPRINT = 0xFFFF_FFFF
_NO_UUID = 0xFF  # in ``_uuid_kind``: no uuid
_PACKED = 0  # a canonical uuid, packed in ``_uuids``
_OTHER = 1  # any other uuid, kept as text in ``_other_uuids``
_OTHER_ERROR = 255  # in ``_errors``: the error is kept as text in ``_other_errors``


class Earlier(NamedTuple):
    """What an earlier try settled for one message, and the fingerprint of the content it had."""

    result: MessageResult
    fingerprint: str | None


def _key(internal_id: str) -> int:
    digest = hashlib.blake2b(internal_id.encode("utf-8", "surrogatepass"), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def _fingerprint_number(fingerprint: str | None) -> int:
    try:
        return int(fingerprint, 16) if fingerprint and len(fingerprint) == 8 else _NO_FINGERPRINT
    except ValueError:
        return _NO_FINGERPRINT


class _Column:
    """One field's values, row by row: each distinct value once, rows as 4-byte indexes (0 is None)."""

    def __init__(self) -> None:
        self._values: list[str | None] = [None]
        self._index: dict[str | None, int] = {None: 0}
        self._rows = array("I")

    def put(self, row: int, value: str | None) -> None:
        number = self._index.get(value)
        if number is None:
            number = self._index[value] = len(self._values)
            self._values.append(value)
        if row == len(self._rows):
            self._rows.append(number)
        else:
            self._rows[row] = number

    def get(self, row: int) -> str | None:
        return self._values[self._rows[row]]


class SettledIndex:
    """``internal_id`` -> :class:`Earlier`, in about 45 bytes per message; an earlier acceptance wins."""

    def __init__(self) -> None:
        self._mask = 1023
        #: The table: each slot holds a row number plus one (0: empty); a row's key is in ``_keys``.
        self._slots = array("I", bytes(4 * (self._mask + 1)))
        self._keys = array("Q")
        self._uuids = bytearray()
        self._uuid_kind = bytearray()
        self._errors = bytearray()
        self._fingerprints = array("I")
        self._other_uuids: dict[int, str] = {}
        self._codes: list[str | None] = [None]
        self._code_index: dict[str | None, int] = {None: 0}
        self._other_errors: dict[int, str | None] = {}
        #: Every other field of a result (``task_id``...): its distinct values, and an index per row.
        self._extra = {name: _Column() for name in MessageResult._fields[3:]}

    def __len__(self) -> int:
        return len(self._errors)

    def _find(self, key: int) -> int:
        """The slot of ``key``, or the empty slot where it would go."""
        slot = key & self._mask
        while (held := self._slots[slot]) != _EMPTY and self._keys[held - 1] != key:
            slot = (slot + 1) & self._mask
        return slot

    def _grow(self) -> None:
        self._mask = self._mask * 2 + 1
        self._slots = array("I", bytes(4 * (self._mask + 1)))
        for row, key in enumerate(self._keys):
            self._slots[self._find(key)] = row + 1

    def _write(self, row: int, result: MessageResult, fingerprint: str | None) -> None:
        kind, packed = _NO_UUID, bytes(16)
        if result.message_uuid:
            try:
                parsed = uuid_module.UUID(result.message_uuid)
            except ValueError:
                parsed = None
            if parsed is not None and str(parsed) == result.message_uuid:
                kind, packed = _PACKED, parsed.bytes
            else:
                kind = _OTHER
                self._other_uuids[row] = result.message_uuid
        if kind != _OTHER:
            self._other_uuids.pop(row, None)
        code = self._code_index.get(result.error)
        if code is None and len(self._codes) < _OTHER_ERROR:
            code = self._code_index[result.error] = len(self._codes)
            self._codes.append(result.error)
        if code is None:  # past 254 distinct codes: kept as text
            code = _OTHER_ERROR
            self._other_errors[row] = result.error
        else:
            self._other_errors.pop(row, None)
        fp = _fingerprint_number(fingerprint)
        for name, column in self._extra.items():
            column.put(row, getattr(result, name))
        if row == len(self._errors):
            self._uuids += packed
            self._uuid_kind.append(kind)
            self._errors.append(code)
            self._fingerprints.append(fp)
        else:
            self._uuids[16 * row : 16 * row + 16] = packed
            self._uuid_kind[row] = kind
            self._errors[row] = code
            self._fingerprints[row] = fp

    def add(self, result: MessageResult, fingerprint: str | None) -> None:
        """Record an earlier result; a later one replaces it unless the earlier one was accepted."""
        key = _key(result.internal_id)
        slot = self._find(key)
        if self._slots[slot] != _EMPTY:
            row = self._slots[slot] - 1
            if not self._accepted(row):
                self._write(row, result, fingerprint)
            return
        row = len(self._errors)
        self._write(row, result, fingerprint)
        self._keys.append(key)
        self._slots[slot] = row + 1
        if len(self._errors) * 3 > (self._mask + 1) * 2:
            self._grow()

    def _accepted(self, row: int) -> bool:
        return self._errors[row] == 0 and self._uuid_kind[row] != _NO_UUID

    def _result(self, internal_id: str, row: int) -> Earlier:
        kind = self._uuid_kind[row]
        uuid = (
            str(uuid_module.UUID(bytes=bytes(self._uuids[16 * row : 16 * row + 16])))
            if kind == _PACKED
            else self._other_uuids.get(row)
        )
        fp = self._fingerprints[row]
        code = self._errors[row]
        error = self._other_errors.get(row) if code == _OTHER_ERROR else self._codes[code]
        extra = (column.get(row) for column in self._extra.values())
        return Earlier(
            MessageResult(internal_id, uuid, error, *extra),
            None if fp == _NO_FINGERPRINT else f"{fp:08x}",
        )

    def get(self, internal_id: str) -> Earlier | None:
        """What an earlier try settled for ``internal_id``, or ``None``."""
        if not self._errors:
            return None  # a first try: no hashing per message
        held = self._slots[self._find(_key(internal_id))]
        return None if held == _EMPTY else self._result(internal_id, held - 1)
