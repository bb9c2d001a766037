from __future__ import annotations

import importlib
from importlib.metadata import entry_points

import pytest

from airflow_provider_commpeak import __version__
from airflow_provider_commpeak.get_provider_info import get_provider_info
from airflow_provider_commpeak.hooks.commpeak import CommPeakHook


def test_entry_point_resolves_to_get_provider_info():
    [ep] = [
        e for e in entry_points(group="apache_airflow_provider") if e.name == "provider_info" and "commpeak" in e.value
    ]
    assert ep.load() is get_provider_info


def test_every_declared_module_and_class_imports():
    info = get_provider_info()
    assert info["package-name"] == "airflow-provider-commpeak"
    assert info["versions"] == [__version__]
    for kind in ("hooks", "operators", "sensors", "triggers"):
        for entry in info[kind]:
            for module in entry["python-modules"]:
                importlib.import_module(module)
    for path in info["notifications"]:
        module, _, name = path.rpartition(".")
        assert getattr(importlib.import_module(module), name)


def test_connection_type_declares_fields_and_behaviour():
    [conn] = get_provider_info()["connection-types"]
    assert conn["connection-type"] == CommPeakHook.conn_type == "commpeak"
    assert conn["hook-class-name"] == "airflow_provider_commpeak.hooks.commpeak.CommPeakHook"
    assert conn["hook-name"] == CommPeakHook.hook_name == "CommPeak SMS"
    assert set(conn["ui-field-behaviour"]["hidden-fields"]) == {"login", "schema", "port", "extra"}
    assert conn["ui-field-behaviour"]["relabeling"]["password"] == "API key"
    assert set(conn["conn-fields"]) == {"timeout", "allow_insecure_http"}
    assert CommPeakHook.get_ui_field_behaviour()["hidden_fields"] == conn["ui-field-behaviour"]["hidden-fields"]
    assert CommPeakHook.default_conn_name == "commpeak_default"


def test_the_legacy_form_and_the_json_schema_agree_on_the_timeout():
    pytest.importorskip("wtforms")
    schema = get_provider_info()["connection-types"][0]["conn-fields"]["timeout"]["schema"]
    widget = CommPeakHook.get_connection_form_widgets()["timeout"]
    [number_range] = [v for v in widget.kwargs["validators"] if type(v).__name__ == "NumberRange"]
    assert "integer" in schema["type"]
    assert widget.field_class.__name__ == "IntegerField"
    assert (number_range.min, number_range.max) == (schema["minimum"], schema["maximum"])


def test_the_how_to_pages_exist():
    from pathlib import Path

    [integration] = get_provider_info()["integrations"]
    root = Path(__file__).resolve().parents[1]
    assert all((root / page.lstrip("/")).is_file() for page in integration["how-to-guide"])


def test_providers_manager_sees_the_hook_and_connection_type():
    from airflow.providers_manager import ProvidersManager

    try:  # Airflow >= 3.2: hooks are the task runtime's business
        from airflow.sdk.providers_manager_runtime import ProvidersManagerTaskRuntime as HooksManager
    except ImportError:
        HooksManager = ProvidersManager
    assert "airflow-provider-commpeak" in ProvidersManager().providers
    hooks = HooksManager().hooks
    assert "commpeak" in hooks
    assert hooks["commpeak"].hook_class_name == "airflow_provider_commpeak.hooks.commpeak.CommPeakHook"
