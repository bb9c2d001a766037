"""The README's DAG, as the README shows it (the suite runs it in ``dag.test()``)."""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parents[2] / "README.md"


def readme_dag() -> str:
    """The Python block under "Send, then wait: a DAG"."""
    section = README.read_text().split("## Send, then wait: a DAG", 1)[1]
    found = re.search(r"```python\n(.*?)```", section, re.S)
    assert found is not None, "the README's DAG section has no Python block"
    return found.group(1)
