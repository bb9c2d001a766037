"""Provider metadata read by Airflow's ``ProvidersManager`` through the ``apache_airflow_provider`` entry point."""

from __future__ import annotations

from typing import Any

from airflow_provider_commpeak import __version__

INTEGRATION = "CommPeak SMS"
#: The how-to pages of the documentation (``make docs``), under ``docs/howto/``.
HOW_TO_PAGES = ("connection", "send", "wait", "alerts", "sandbox")

#: How the connection form shows the built-in fields (Airflow >= 3.2 reads it from here).
UI_FIELD_BEHAVIOUR: dict[str, Any] = {
    "hidden-fields": ["login", "schema", "port", "extra"],
    "relabeling": {"password": "API key", "host": "Base URL"},
    "placeholders": {
        "host": "https://sendsms.commpeak.com (or http://127.0.0.1:8099 for the sandbox)",
        "password": "your SMS Streams API key",
        "timeout": "30",
    },
}

#: The extra fields of the connection form (Airflow >= 3.2 reads it from here).
CONN_FIELDS: dict[str, Any] = {
    "timeout": {
        "label": "Timeout (seconds)",
        "schema": {"type": ["integer", "null"], "minimum": 1, "maximum": 600},
        "description": "Optional. Seconds one request may take in all (default 30).",
    },
    "allow_insecure_http": {
        "label": "Allow plain http:// to a non-loopback host",
        "schema": {"type": ["boolean", "null"]},
        "description": "Optional, off by default: the API key would travel unencrypted.",
    },
}


#: The provider's config options (``airflow config list`` shows them; ``AIRFLOW__COMMPEAK__<OPTION>``).
CONFIG: dict[str, Any] = {
    "commpeak": {
        "description": "Settings of the CommPeak SMS provider.",
        "options": {
            "ledger_path": {
                "description": (
                    "A folder (local path, file://, s3://, gs://... any ObjectStoragePath) where SendSmsOperator "
                    "keeps its send ledger, one subfolder per task instance, so that a retry or a Clear of a send "
                    "task never resends a message an earlier try got accepted. Needed on Airflow 2.11 to 3.2; on "
                    "3.3 and newer it replaces task_state_store (and outlives a Clear and any retention). Shared "
                    "storage when tasks may retry on another worker. The operator's ledger_path overrides it."
                ),
                "version_added": "1.2.0",
                "type": "string",
                "example": "s3://my-bucket/commpeak-ledger",
                "default": "",
            }
        },
    }
}


def _modules(kind: str) -> list[dict[str, Any]]:
    return [
        {
            "integration-name": INTEGRATION,
            "python-modules": [f"airflow_provider_commpeak.{kind}.commpeak"],
        }
    ]


def get_provider_info() -> dict[str, Any]:
    """Return the provider's metadata for Airflow's providers manager."""
    return {
        "package-name": "airflow-provider-commpeak",
        "name": "CommPeak",
        "description": "Send SMS and wait for delivery receipts with CommPeak's SMS Streams API.",
        "versions": [__version__],
        "integrations": [
            {
                "integration-name": INTEGRATION,
                "external-doc-url": "https://www.commpeak.com/",
                "how-to-guide": [f"/docs/howto/{page}.md" for page in HOW_TO_PAGES],
                "tags": ["service"],
            }
        ],
        "hooks": _modules("hooks"),
        "operators": _modules("operators"),
        "sensors": _modules("sensors"),
        "triggers": _modules("triggers"),
        "config": CONFIG,
        "notifications": ["airflow_provider_commpeak.notifications.commpeak.CommPeakSmsNotifier"],
        "connection-types": [
            {
                "hook-class-name": "airflow_provider_commpeak.hooks.commpeak.CommPeakHook",
                "hook-name": "CommPeak SMS",
                "connection-type": "commpeak",
                "ui-field-behaviour": UI_FIELD_BEHAVIOUR,
                "conn-fields": CONN_FIELDS,
            }
        ],
    }
