"""Sphinx configuration: ``make docs`` builds the site into docs/_build/html, warnings as errors."""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.abspath(".."))

from airflow_provider_commpeak import __version__

project = "airflow-provider-commpeak"
author = "airflow-provider-commpeak developers"
copyright = "2026, airflow-provider-commpeak developers"
release = version = __version__

extensions = ["myst_parser", "sphinx.ext.autodoc", "sphinx.ext.viewcode"]
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
myst_heading_anchors = 3
exclude_patterns = ["_build"]
suppress_warnings = ["myst.xref_missing"] if os.environ.get("COMMPEAK_DOCS_LENIENT") else []

autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_default_options = {"members": True, "show-inheritance": True}
# Airflow's own classes and third-party types are not documented here: do not ask for their targets.
nitpick_ignore_regex = [
    ("py:class", r"(airflow|requests|httpx|jinja2|datetime|pytest|collections|typing)\..*"),
    ("py:class", r"(Context|CommPeakHook|SendLedger|StagedMessages|DeliverySnapshot|DeliveryTracker|AlertEvent)"),
    ("py:class", r"(Any|Sequence|Iterable|Callable|Mapping|Iterator|AsyncIterator|TriggerEvent|NoneType)"),
    (
        "py:class",
        r"(SendOutcome|StageStats|SendReport|SendSummary|DryRunReport|RateController|SyncTransport|AsyncTransport)",
    ),
    (
        "py:class",
        r"(PokeReturnValue|AirflowException|BaseHook|BaseOperator|BaseSensorOperator|BaseTrigger|BaseNotifier)",
    ),
    ("py:class", r"(HTTPStatus|Answer|requests\.Session|Session|datetime|timedelta|Safeguards|SendWindow)"),
    ("py:class", r"airflow_provider_commpeak\._(engine|input)\..*"),  # private modules
    ("py:class", r".*\.(Context|TriggerEvent|SendOutcome|StageStats|SendReport|SendSummary|DryRunReport)"),
    ("py:obj", r".*"),
    ("py:data", r".*"),
    ("py:meth", r".*aget_statuses"),
]

html_theme = "alabaster"
html_title = f"airflow-provider-commpeak {version}"
html_static_path: list[str] = []
