"""Splitting messages into batches and sending batches concurrently, results in input order."""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from itertools import islice
from typing import Any, TypeVar

from airflow_provider_commpeak.hooks.report import NOT_SENT, SendReport

T = TypeVar("T")
#: What sending one batch returns: its report, and the auth error that should stop the send.
Outcome = tuple[SendReport, Any]


def chunked(items: Iterable[T], size: int) -> Iterator[list[T]]:
    """Lists of at most ``size`` items, consuming ``items`` lazily."""
    iterator = iter(items)
    while chunk := list(islice(iterator, size)):
        yield chunk


def run_in_order(
    batches: Iterable[list[dict[str, str]]],
    send: Callable[[list[dict[str, str]]], Outcome],
    max_concurrency: int,
) -> Iterator[Outcome]:
    """
    Send batches with at most ``max_concurrency`` in flight; yield their outcomes in input order.

    ``batches`` is consumed lazily, so memory stays bounded whatever its length. Once one batch
    comes back with an error (an auth error), batches not yet started are not sent: they come back
    with every message ``NOT_SENT``. If a batch raises, batches already in flight still hand over
    their outcomes (so the caller can record what the API accepted) before the exception goes on.
    """
    stop = threading.Event()

    def guarded(batch: list[dict[str, str]]) -> Outcome:
        if stop.is_set():
            skipped = SendReport()
            for message in batch:
                skipped.record(message["internal_id"], None, NOT_SENT)
            return skipped, None
        outcome = send(batch)
        if outcome[1] is not None:
            stop.set()
        return outcome

    if max_concurrency == 1:
        yield from map(guarded, batches)
        return
    with ThreadPoolExecutor(max_workers=max_concurrency, thread_name_prefix="commpeak-send") as pool:
        in_flight: deque[Future[Outcome]] = deque()
        try:
            for batch in batches:
                in_flight.append(pool.submit(guarded, batch))
                if len(in_flight) >= max_concurrency:
                    yield in_flight.popleft().result()
            while in_flight:
                yield in_flight.popleft().result()
        except BaseException:
            stop.set()
            for future in in_flight:
                if not future.cancelled() and future.exception() is None:
                    yield future.result()
            raise
