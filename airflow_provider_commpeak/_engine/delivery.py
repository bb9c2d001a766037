"""Deciding, from delivery statuses, whether waiting is over: shared by the sensor and the trigger."""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Mapping
from dataclasses import dataclass

DEFAULT_SUCCESS_STATUSES = ("delivered",)
DEFAULT_FAILURE_STATUSES = ("sent_failed", "undelivered", "no_routes", "rejected")


@dataclass(frozen=True)
class DeliveryVerdict:
    """
    Where a set of messages stands.

    :param succeeded: Messages in a success status.
    :param failed: Messages in a failure status.
    :param pending: Messages in neither (``sent``, ``unknown``, ...).
    :param too_many_failures: ``failed`` exceeds what is allowed: no point waiting.
    """

    succeeded: int
    failed: int
    pending: int
    too_many_failures: bool

    @property
    def done(self) -> bool:
        """Every message reached a final status (or failures already exceed the allowance)."""
        return self.pending == 0 or self.too_many_failures


def judge_delivery(
    statuses: Mapping[str, str],
    *,
    success_statuses: Collection[str],
    failure_statuses: Collection[str],
    allowed_failures: int,
) -> DeliveryVerdict:
    """Count the statuses and decide whether waiting is over."""
    succeeded = sum(1 for s in statuses.values() if s in success_statuses)
    failed = sum(1 for s in statuses.values() if s in failure_statuses)
    return DeliveryVerdict(
        succeeded=succeeded,
        failed=failed,
        pending=len(statuses) - succeeded - failed,
        too_many_failures=failed > allowed_failures,
    )


def describe_statuses(statuses: Mapping[str, str]) -> str:
    """Statuses counted in words: ``"3 delivered, 1 undelivered"``."""
    return ", ".join(f"{n} {status}" for status, n in sorted(Counter(statuses.values()).items()))


def is_final(status: str, success_statuses: Collection[str], failure_statuses: Collection[str]) -> bool:
    """Whether ``status`` will not change any more."""
    return status in success_statuses or status in failure_statuses
