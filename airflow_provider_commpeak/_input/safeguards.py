"""
Campaign safeguards applied while validating, before anything is sent: destination countries,
spend caps, an opt-out footer and smart encoding. The provider enforces what the user configures;
none of it is legal advice.

Countries and prices are named by ISO region (``"GB"``) or by calling code (``"44"`` or ``"+44"``).
A number's calling code is read from its digits (cheap); its region is parsed only when a rule names
a region whose calling code other regions share (``"US"`` vs ``"CA"`` under +1).
"""

from __future__ import annotations

import csv
import json
import math
import os
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from airflow_provider_commpeak._input.phones import country_calling_code
from airflow_provider_commpeak._input.segments import GSM7_ALL, count_segments
from airflow_provider_commpeak._input.send_window import SendWindow, send_window_problems

#: What smart encoding replaces: characters that force UCS-2 but have a GSM-7 look-alike.
SMART_REPLACEMENTS: dict[str, str] = {
    "\u2018": "'",  # left single quotation mark
    "\u2019": "'",  # right single quotation mark (the curly apostrophe)
    "\u201a": "'",
    "\u201b": "'",
    "\u2032": "'",  # prime
    "\u201c": '"',
    "\u201d": '"',
    "\u201e": '"',
    "\u201f": '"',
    "\u2033": '"',
    "\u00ab": '"',  # guillemets
    "\u00bb": '"',
    "\u2013": "-",  # en dash
    "\u2014": "-",  # em dash
    "\u2015": "-",
    "\u2010": "-",
    "\u2011": "-",
    "\u2012": "-",
    "\u2212": "-",  # minus sign
    "\u2026": "...",  # ellipsis
    "\u00a0": " ",  # no-break space
    "\u2002": " ",
    "\u2003": " ",
    "\u2009": " ",
    "\u200a": " ",
    "\u202f": " ",
    "\u2007": " ",
    "\u200b": "",  # zero-width space
    "\u00ad": "",  # soft hyphen
    "\ufeff": "",  # a stray byte order mark
    "\u2022": "*",  # bullet
    "\u00b7": ".",  # middle dot
}
_SMART_TABLE = str.maketrans(SMART_REPLACEMENTS)

#: The key of the price every country without its own takes.
DEFAULT_PRICE_KEY = "default"


def smart_encode(text: str) -> str:
    """``text`` with look-alikes replaced where that makes it GSM-7 (a text needing UCS-2 anyway is kept)."""
    if text.isascii():
        return text
    replaced = text.translate(_SMART_TABLE)
    return replaced if set(replaced) <= GSM7_ALL else text


@lru_cache(maxsize=1)
def _regions_by_code() -> dict[str, tuple[str, ...]]:
    import phonenumbers

    return {str(code): tuple(regions) for code, regions in phonenumbers.COUNTRY_CODE_TO_REGION_CODE.items()}


@lru_cache(maxsize=1)
def _code_by_region() -> dict[str, str]:
    return {region: code for code, regions in _regions_by_code().items() for region in regions}


def _destination(entry: object, name: str) -> tuple[str, str | None] | str:
    """``(calling code, region or None)`` for ``"GB"``, ``"44"`` or ``"+44"``; else the problem."""
    text = str(entry).strip() if isinstance(entry, (str, int)) and not isinstance(entry, bool) else ""
    if text.upper() in _code_by_region() and not text.isdigit():
        region = text.upper()
        code = _code_by_region()[region]
        return (code, region if len(_regions_by_code()[code]) > 1 else None)
    digits = text.removeprefix("+")
    if digits.isdigit() and digits in _regions_by_code():
        return (digits, None)
    return f"{name}: {str(entry)[:20]!r} is neither an ISO region (e.g. 'GB') nor a calling code (e.g. '44')"


@lru_cache(maxsize=65536)
def region_of(phone: str) -> str:
    """The ISO region of a number in international digits (``""`` when libphonenumber cannot tell)."""
    import phonenumbers

    try:
        return phonenumbers.region_code_for_number(phonenumbers.parse(f"+{phone}")) or ""
    except phonenumbers.NumberParseException:
        return ""


class _Destinations:
    """A set of destinations: calling codes, and regions inside shared calling codes."""

    def __init__(self, entries: Iterable[tuple[str, str | None]]) -> None:
        self.codes: set[str] = set()
        self.regions: dict[str, set[str]] = {}
        for code, region in entries:
            if region is None:
                self.codes.add(code)
            else:
                self.regions.setdefault(code, set()).add(region)

    def __contains__(self, phone: object) -> bool:
        assert isinstance(phone, str)
        code = country_calling_code(phone)
        if code in self.codes:
            return True
        regions = self.regions.get(code)
        return regions is not None and region_of(phone) in regions


def describe_destination(phone: str) -> str:
    """``"+44"``, or ``"+1 (CA)"`` where a calling code is shared: how counts name a destination."""
    code = country_calling_code(phone)
    if len(_regions_by_code().get(code, ())) > 1:
        return f"+{code} ({region_of(phone) or '?'})"
    return f"+{code}"


@dataclass(frozen=True)
class Safeguards:
    """
    What a campaign may do, checked before anything is sent (nothing is sent if any rule is broken).

    :param allowed_countries: Send only to these destinations (ISO regions such as ``"IL"``, or
        calling codes such as ``"44"``); any other number is refused at validation.
    :param blocked_countries: Never send to these; a number to one of them is refused at validation.
    :param max_total_segments: Refuse the campaign if its messages take more SMS segments than this.
    :param prices: Price of one SMS segment per destination (ISO region or calling code), with an
        optional ``"default"``: the estimated cost is counted per calling code and in total.
    :param max_cost: Refuse the campaign if its estimated cost is above this (needs ``prices``).
    :param opt_out_text: Appended to every message on a new line (``"Reply STOP to opt out"``);
        segments, ``max_segments`` and the dry run count it.
    :param smart_encoding: Replace characters that force UCS-2 but have a GSM-7 look-alike (curly
        quotes, dashes, ellipsis, no-break spaces...) where that makes the whole text GSM-7.
    :param suppression_path: A file of numbers never to text (opt-outs): ``.txt`` (one per line),
        ``.csv`` (a ``recipient_phone`` column, or numbers in the first column) or ``.jsonl``; local
        or an ObjectStoragePath URL. Numbers in any format, read as recipients are.
    :param send_window: Quiet hours: the local hours (and weekdays) a recipient may be texted, from
        the time zones of their number; a message outside them is held back (``WAITING``).
    """

    allowed_countries: tuple[str, ...] | None = None
    blocked_countries: tuple[str, ...] = ()
    max_total_segments: int | None = None
    prices: Mapping[str, float] | None = None
    max_cost: float | None = None
    opt_out_text: str | None = None
    smart_encoding: bool = False
    suppression_path: Any = None
    send_window: SendWindow | None = None
    _allowed: _Destinations | None = field(default=None, init=False, repr=False, compare=False)
    _blocked: _Destinations | None = field(default=None, init=False, repr=False, compare=False)
    _prices: dict[str, float] = field(default_factory=dict, init=False, repr=False, compare=False)

    @classmethod
    def build(cls, **values: Any) -> Safeguards:
        """Check every value (all problems at once, as :class:`ValueError`) and build the safeguards."""
        problems = safeguard_problems(**values)
        if problems:
            raise ValueError("; ".join(problems))
        allowed = values.get("allowed_countries")
        made = cls(
            allowed_countries=None if allowed is None else tuple(_as_list(allowed)),
            blocked_countries=tuple(_as_list(values.get("blocked_countries"))),
            max_total_segments=values.get("max_total_segments"),
            prices=dict(values["prices"]) if values.get("prices") else None,
            max_cost=values.get("max_cost"),
            opt_out_text=values.get("opt_out_text") or None,
            smart_encoding=bool(values.get("smart_encoding")),
            suppression_path=values.get("suppression_path"),
            send_window=(
                None
                if values.get("send_window") is None
                else SendWindow.build(values["send_window"], values.get("send_window_days"))
            ),
        )
        if made.allowed_countries is not None:
            object.__setattr__(made, "_allowed", _Destinations(_entries(made.allowed_countries)))
        if made.blocked_countries:
            object.__setattr__(made, "_blocked", _Destinations(_entries(made.blocked_countries)))
        if made.prices:
            object.__setattr__(made, "_prices", _price_table(made.prices))
        return made

    @property
    def active(self) -> bool:
        return self != Safeguards()

    def text(self, content: str, *, smart: bool = True) -> str:
        """The text as it will be sent: look-alikes replaced (if asked), the footer appended."""
        if smart and self.smart_encoding:
            content = smart_encode(content)
        if self.opt_out_text:
            content = f"{content}\n{self.opt_out_text}"
        return content

    def refusal(self, phone: str) -> str | None:
        """Why ``phone``'s destination is refused (``"not in allowed_countries"``), or ``None``."""
        if self._blocked is not None and phone in self._blocked:
            return "in blocked_countries"
        if self._allowed is not None and phone not in self._allowed:
            return "not in allowed_countries"
        return None

    def price(self, calling_code: str) -> float | None:
        """The price of one segment to ``calling_code``, or ``None`` without a price for it."""
        return self._prices.get(calling_code, self._prices.get(DEFAULT_PRICE_KEY))


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    if isinstance(value, (str, int)):
        return [value]
    return list(value)


def _entries(values: Iterable[Any]) -> list[tuple[str, str | None]]:
    return [entry for entry in (_destination(v, "") for v in values) if isinstance(entry, tuple)]


def _price_table(prices: Mapping[str, float]) -> dict[str, float]:
    """Prices by calling code (a region's price is its calling code's)."""
    table: dict[str, float] = {}
    for key, price in prices.items():
        if str(key).lower() == DEFAULT_PRICE_KEY:
            table[DEFAULT_PRICE_KEY] = float(price)
            continue
        entry = _destination(key, "prices")
        assert isinstance(entry, tuple)
        table[entry[0]] = float(price)
    return table


def _number_problem(name: str, value: Any, *, integer: bool = False) -> list[str]:
    if value is None:
        return []
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (integer and not isinstance(value, int)):
        return [f"{name} must be {'an int' if integer else 'a number'}, got {type(value).__name__}"]
    if not math.isfinite(value) or value < (1 if integer else 0):
        return [f"{name} must be {'at least 1' if integer else 'a finite number >= 0'}, got {value!r}"]
    return []


def safeguard_problems(**values: Any) -> list[str]:
    """Every problem with the safeguards' values, at once (for DAG parse and before sending)."""
    problems: list[str] = []
    for name in ("allowed_countries", "blocked_countries"):
        value = values.get(name)
        if value is None:
            continue
        if isinstance(value, (Mapping, set, frozenset, bytes)):
            problems.append(f"{name} must be a list of ISO regions or calling codes, got {type(value).__name__}")
            continue
        entries = _as_list(value)
        if name == "allowed_countries" and not entries:
            problems.append("allowed_countries is empty: nothing could be sent (use None to allow every country)")
        problems += [p for p in (_destination(v, name) for v in entries) if isinstance(p, str)]
    problems += _number_problem("max_total_segments", values.get("max_total_segments"), integer=True)
    problems += _number_problem("max_cost", values.get("max_cost"))
    prices = values.get("prices")
    if prices is not None:
        if not isinstance(prices, Mapping):
            problems.append(
                f"prices must be a mapping of destination to price per segment, got {type(prices).__name__}"
            )
        else:
            seen: dict[str, str] = {}
            for key, price in prices.items():
                problems += _number_problem(f"prices[{str(key)[:20]!r}]", price)
                if str(key).lower() == DEFAULT_PRICE_KEY:
                    continue
                entry = _destination(key, "prices")
                if isinstance(entry, str):
                    problems.append(entry)
                elif entry[0] in seen and seen[entry[0]] != str(key):
                    problems.append(
                        f"prices: {seen[entry[0]]!r} and {str(key)!r} share calling code +{entry[0]}; give one price for it"
                    )
                else:
                    seen[entry[0]] = str(key)
    if values.get("max_cost") is not None and not prices:
        problems.append("max_cost needs prices")
    path = values.get("suppression_path")
    if path is not None and not (isinstance(path, (str, os.PathLike)) or hasattr(path, "open")):
        problems.append(f"suppression_path must be a path or URL, got {type(path).__name__}")
    elif isinstance(path, (str, os.PathLike)) and suppression_format(path) is None:
        problems.append("suppression_path: name it .txt, .csv or .jsonl")
    problems += send_window_problems(values.get("send_window"), values.get("send_window_days"))
    footer = values.get("opt_out_text")
    if footer is not None:
        if not isinstance(footer, str):
            problems.append(f"opt_out_text must be a string, got {type(footer).__name__}")
        elif footer.strip():
            max_segments = values.get("max_segments")
            taken = count_segments(f"x\n{footer}").segments
            if isinstance(max_segments, int) and taken > max_segments:
                problems.append(
                    f"opt_out_text alone takes {taken} SMS segment(s), more than max_segments={max_segments}"
                )
    return problems


def suppression_format(path: Any) -> str | None:
    """``txt``, ``csv`` or ``jsonl`` from a suppression list's name, or ``None``."""
    suffix = os.path.splitext(str(path))[1].lower()
    return {".txt": "txt", ".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl"}.get(suffix)


def iter_suppressed(path: Any) -> Iterator[tuple[int, object]]:
    """``(line, number as written)`` for each entry of a suppression list, streaming."""
    from airflow_provider_commpeak._input.records import open_path

    kind = suppression_format(path)
    with open_path(path, "rb") as binary:
        lines = (raw.decode("utf-8-sig", "replace") for raw in binary)
        if kind == "csv":
            rows = csv.reader(lines)
            column = 0
            for number, row in enumerate(rows, 1):
                if (
                    number == 1
                    and row
                    and any(not cell.strip() or cell.strip().isalpha() or "_" in cell for cell in row)
                ):
                    names = [cell.strip().lower() for cell in row]
                    column = next((names.index(n) for n in ("recipient_phone", "phone", "number") if n in names), 0)
                    continue
                if len(row) > column and row[column].strip():
                    yield rows.line_num, row[column]
            return
        for number, line in enumerate(lines, 1):
            text = line.strip()
            if not text or text.startswith("#"):
                continue
            if kind == "jsonl":
                try:
                    value = json.loads(text)
                except (ValueError, RecursionError):
                    yield number, None
                    continue
                yield number, value.get("recipient_phone") if isinstance(value, dict) else value
            else:
                yield number, text
