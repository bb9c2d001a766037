"""The error classes: one family, HTTP status under its own name, data for the caller."""

from __future__ import annotations

from http import HTTPStatus

import pytest
from airflow.providers.common.compat.sdk import AirflowException

from airflow_provider_commpeak.exceptions import (
    CommPeakApiError,
    CommPeakAuthError,
    CommPeakDeliveryError,
    CommPeakError,
    CommPeakSendError,
    CommPeakValidationError,
)


def test_one_family_below_airflow_exception():
    for cls in (CommPeakApiError, CommPeakAuthError, CommPeakValidationError, CommPeakSendError, CommPeakDeliveryError):
        assert issubclass(cls, CommPeakError)
        assert issubclass(CommPeakError, AirflowException)
    assert issubclass(CommPeakValidationError, ValueError)


def test_http_status_has_its_own_name_and_status_code_is_a_deprecated_alias():
    error = CommPeakApiError("x", http_status=502, detail=[{"loc": ["body"], "type": "missing"}])
    assert error.http_status == 502
    with pytest.warns(DeprecationWarning, match="http_status"):
        assert error.status_code == 502
    with pytest.warns(DeprecationWarning, match="http_status"):
        assert CommPeakApiError("x", status_code=404).http_status == 404
    assert CommPeakError("x").status_code == HTTPStatus.INTERNAL_SERVER_ERROR  # Airflow's own, untouched


def test_validation_errors_list_twenty_problems_and_count_the_rest():
    error = CommPeakValidationError([f"message {i}: bad" for i in range(25)])
    assert len(error.problems) == 25
    assert "... and 5 more" in str(error)
