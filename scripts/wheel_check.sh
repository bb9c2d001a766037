#!/usr/bin/env bash
# `make wheel-check`: install the built wheel (not the checkout) into a clean venv with the same
# Airflow as $VENV, and check Airflow registers the provider and every declared module imports.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
CHECK_VENV=${CHECK_VENV:-.venv-wheel}
wheel=$(ls dist/airflow_provider_commpeak-*.whl)
airflow_version=$("$VENV/bin/python" -c 'import importlib.metadata as m; print(m.version("apache-airflow"))')

echo "==> What the wheel holds"
"$VENV/bin/python" - "$wheel" <<'PY'
import sys, zipfile
names = zipfile.ZipFile(sys.argv[1]).namelist()
assert all(n.startswith(("airflow_provider_commpeak/", "airflow_provider_commpeak-")) for n in names), names
assert not any("/tests/" in n or n.startswith("tests/") or "example_dags" in n for n in names), "tests or examples in the wheel"
assert "airflow_provider_commpeak/py.typed" in names
assert any(n.endswith("licenses/LICENSE") for n in names), "no LICENSE in the wheel"
print(f"    {len(names)} files, package only, py.typed and LICENSE included")
PY

echo "==> A clean venv with $wheel and apache-airflow==$airflow_version"
rm -rf "$CHECK_VENV"
"$VENV/bin/python" -m venv "$CHECK_VENV"
"$CHECK_VENV/bin/pip" install --quiet --upgrade pip
"$CHECK_VENV/bin/pip" install --quiet "$wheel" "apache-airflow==$airflow_version"

home=$(mktemp -d)
trap 'rm -rf "$home"' EXIT
cd "$home"  # away from the checkout: nothing but the installed wheel can be imported
export AIRFLOW_HOME="$home" AIRFLOW__CORE__LOAD_EXAMPLES=False
bin="$OLDPWD/$CHECK_VENV/bin"

echo "==> airflow providers list / hooks"
"$bin/airflow" providers list --output plain | grep -E "airflow-provider-commpeak"
"$bin/airflow" providers hooks --output plain | grep -E "^commpeak"

echo "==> Every module get_provider_info() names imports"
"$bin/python" - <<'PY'
import importlib
import airflow_provider_commpeak
from airflow_provider_commpeak.get_provider_info import get_provider_info

assert "site-packages" in airflow_provider_commpeak.__file__, airflow_provider_commpeak.__file__
info = get_provider_info()
modules = [m for kind in ("hooks", "operators", "sensors", "triggers") for entry in info[kind] for m in entry["python-modules"]]
classes = [*info["notifications"], *(c["hook-class-name"] for c in info["connection-types"])]
for name in modules:
    importlib.import_module(name)
for path in classes:
    module, _, cls = path.rpartition(".")
    getattr(importlib.import_module(module), cls)
print(f"    {len(modules)} modules and {len(classes)} classes import from the installed wheel")
PY
echo "wheel check passed"
