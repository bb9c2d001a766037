"""The shared queue of messages still to send: what the pipeline's senders take batches from."""

from __future__ import annotations

import heapq
from collections.abc import Iterator
from typing import NamedTuple

from airflow_provider_commpeak._input.message import Message


class Pending(NamedTuple):
    """A message waiting to be sent: its input position, itself, and its last error if it was pushed back."""

    seq: int
    message: Message
    error: str | None = None


class PendingQueue:
    """
    Messages still to send, in input order: pushed-back ones first (by position), then the source.

    The source is read lazily, so memory holds at most the messages in flight and those pushed back.
    Not thread-safe on its own: the pipeline calls it under its lock.

    :param source: The messages to send, each with its input position.
    """

    def __init__(self, source: Iterator[tuple[int, Message]]) -> None:
        self._source: Iterator[tuple[int, Message]] | None = source
        self._pushed_back: list[Pending] = []

    def take(self, count: int) -> list[Pending]:
        """Up to ``count`` messages: pushed-back ones first, in input order, then new ones."""
        batch = [heapq.heappop(self._pushed_back) for _ in range(min(count, len(self._pushed_back)))]
        while self._source is not None and len(batch) < count:
            item = next(self._source, None)
            if item is None:
                self._source = None
            else:
                batch.append(Pending(item[0], item[1]))
        return batch

    def push_back(self, items: list[Pending]) -> None:
        """Return messages the API did not take; they go out again before any new one."""
        for item in items:
            heapq.heappush(self._pushed_back, item)

    @property
    def waiting(self) -> int:
        """How many pushed-back messages wait to be sent again."""
        return len(self._pushed_back)

    @property
    def exhausted(self) -> bool:
        """Nothing left: the source is read to its end and nothing waits to be sent again."""
        return self._source is None and not self._pushed_back

    def drain(self) -> Iterator[Pending]:
        """Take everything left (when a send stops or gives up)."""
        while self._pushed_back:
            yield heapq.heappop(self._pushed_back)
        if self._source is not None:
            source, self._source = self._source, None
            for seq, message in source:
                yield Pending(seq, message)
