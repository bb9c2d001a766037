"""Errors raised by the CommPeak provider.

Every class derives from :class:`CommPeakError`, itself an ``AirflowException``, so a DAG author can
catch the whole family at once. No error text carries the API key, a full phone number or a message
text.

Retries: :class:`CommPeakValidationError` and :class:`CommPeakKeyRefusedError` (the key refused
before the API accepted anything with it) are also Airflow's ``AirflowFailException``: bad input or
a wrong key fails the task at once, on every supported Airflow, without spending its retries
(another try would fail the same way). A key refused in the middle of a send, after the API
accepted messages with it, is a plain :class:`CommPeakAuthError` and retried like every other
error (a rate-limit give-up, an unreachable API, failures over ``allowed_failures``): with the
task's ``retries`` and ``retry_delay`` (or its ``retry_policy`` on Airflow >= 3.3).
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import AirflowException, AirflowFailException

if TYPE_CHECKING:
    from collections.abc import Sequence

    from airflow_provider_commpeak._engine.report import SendOutcome


_STATUS_CODE_RENAMED = (
    "CommPeakApiError.status_code is deprecated and will be removed in airflow-provider-commpeak 2.0: "
    "use http_status (status_code is the name AirflowException gives the status of Airflow's own API)"
)


class CommPeakError(AirflowException):
    """Base class of every error raised by the CommPeak provider."""


class CommPeakApiError(CommPeakError):
    """
    The API answered with an HTTP error, or with a body the provider cannot read.

    :param message: What went wrong, in words.
    :param http_status: The HTTP status code CommPeak answered, when there was an answer.
    :param detail: FastAPI's ``loc``/``type`` of a validation error, or a description of the body
        (never the body itself).
    :param status_code: Deprecated name of ``http_status``.
    """

    def __init__(
        self, message: str, *, http_status: int | None = None, detail: Any = None, status_code: int | None = None
    ) -> None:
        super().__init__(message)
        if status_code is not None:
            warnings.warn(_STATUS_CODE_RENAMED, DeprecationWarning, stacklevel=2)
        self.http_status = http_status if http_status is not None else status_code
        self.detail = detail

    @property
    def status_code(self) -> int | None:  # type: ignore[override]
        """Deprecated: ``http_status``. (It shadowed ``AirflowException.status_code``; removed in 2.0.)"""
        warnings.warn(_STATUS_CODE_RENAMED, DeprecationWarning, stacklevel=2)
        return self.http_status


class CommPeakAuthError(CommPeakApiError):
    """The API refused the key (HTTP 401 or 403). Never retried by the hook: a wrong key stays wrong."""

    def __init__(self, message: str, *, http_status: int | None = None, detail: Any = None) -> None:
        super().__init__(message, http_status=http_status, detail=detail)
        #: What was accepted before the API refused the key, when the refusal came mid-send.
        self.report: SendOutcome | None = None


class CommPeakKeyRefusedError(CommPeakAuthError, AirflowFailException):
    """
    The API refused the key before accepting anything with it (a status read, or a send's first
    answers): the task fails at once, without spending its retries.
    """


class CommPeakValidationError(CommPeakError, AirflowFailException, ValueError):
    """
    The input is invalid; nothing was sent. Fails the task without using its retries.

    :param problems: One line per problem, each naming the message's position.
    """

    #: How many problems the error text lists before it summarises the rest.
    shown_problems = 20

    def __init__(self, problems: Sequence[str], *, what: str = "messages") -> None:
        self.problems = list(problems)
        shown = "\n".join(f"  - {p}" for p in self.problems[: self.shown_problems])
        more = len(self.problems) - self.shown_problems
        if more > 0:
            shown += f"\n  ... and {more} more"
        super().__init__(f"{len(self.problems)} problem(s) in the {what}; nothing was sent:\n{shown}")


class CommPeakSendError(CommPeakError):
    """
    More messages failed than ``allowed_failures`` permits.

    :param message: The summary, counting the errors by kind.
    :param report: The full send report (also in XCom).
    """

    def __init__(self, message: str, *, report: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.report = report


class CommPeakDeliveryError(CommPeakError):
    """
    More messages ended in a failure status than ``allowed_failures`` permits.

    :param message: The summary, counting the statuses.
    :param statuses: ``{message_uuid: status}`` as last seen.
    """

    def __init__(self, message: str, *, statuses: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.statuses = statuses or {}
