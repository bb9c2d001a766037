"""Errors raised by the CommPeak provider.

Every class derives from :class:`CommPeakError`, itself an ``AirflowException``, so a DAG author can
catch the whole family at once. No error text carries the API key, a full phone number or a message
text.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import AirflowException

if TYPE_CHECKING:
    from collections.abc import Sequence

    from airflow_provider_commpeak._engine.report import SendReport, SendSummary


class CommPeakError(AirflowException):
    """Base class of every error raised by the CommPeak provider."""


class CommPeakApiError(CommPeakError):
    """
    The API answered with an HTTP error, or with a body the provider cannot read.

    :param message: What went wrong, in words.
    :param status_code: The HTTP status code, when there was a response.
    :param detail: The ``detail`` the API gave, or a truncated excerpt of the body.
    """

    def __init__(self, message: str, *, status_code: int | None = None, detail: Any = None) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.detail = detail


class CommPeakAuthError(CommPeakApiError):
    """The API refused the key (HTTP 401 or 403). Never retried: a wrong key stays wrong."""

    def __init__(self, message: str, *, status_code: int | None = None, detail: Any = None) -> None:
        super().__init__(message, status_code=status_code, detail=detail)
        #: What was accepted before the API refused the key, when the refusal came mid-send.
        self.report: SendReport | SendSummary | None = None


class CommPeakValidationError(CommPeakError, ValueError):
    """
    The input is invalid; nothing was sent.

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
