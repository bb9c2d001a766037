"""The fault suite's figures, collected while it runs and printed as one table at the end."""

from __future__ import annotations

from typing import Any

#: One row per fault-suite scenario.
FAULT_FIGURES: list[dict[str, Any]] = []
FAULT_COLUMNS = (
    "scenario",
    "fault",
    "messages",
    "accepted",
    "unconfirmed",
    "unconfirmed_but_accepted",
    "failed_other",
    "lost",
    "duplicated",
    "requests",
    "errors",
)


def fault_matrix() -> str:
    """The fault suite's figures as a Markdown table."""
    lines = ["| " + " | ".join(FAULT_COLUMNS) + " |", "|" + "---|" * len(FAULT_COLUMNS)]
    lines += ["| " + " | ".join(str(row[c]) for c in FAULT_COLUMNS) + " |" for row in FAULT_FIGURES]
    return "\n".join(lines)
