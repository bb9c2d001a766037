#!/usr/bin/env bash
# `make e2e-celery`: a campaign on a real CeleryExecutor (Redis broker, two workers) against the
# sandbox. Installs what it needs: Debian's redis-server if missing, and the Celery provider.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}

if ! command -v redis-server >/dev/null; then
  echo "==> Installing Debian's redis-server (the broker; started by the test, bound to 127.0.0.1)"
  SUDO=$([ "$(id -u)" = 0 ] && echo "" || echo "sudo")
  $SUDO apt-get install -y -q redis-server >/dev/null || { $SUDO apt-get update -q >/dev/null && $SUDO apt-get install -y -q redis-server >/dev/null; }
  # the package may start a system service; the test starts its own on a free port
  ($SUDO systemctl disable --now redis-server >/dev/null 2>&1 || true)
fi

echo "==> The Celery provider (celery < 5.7: 5.7 removed celery.backends.database.retry, which it imports)"
"$VENV/bin/python" -m pip install --quiet "apache-airflow-providers-celery" "celery[redis]>=5.5,<5.7"

export AIRFLOW_HOME="$PWD/.airflow-e2e-celery"
export COMMPEAK_CELERY_FIGURES="${COMMPEAK_CELERY_FIGURES:-$AIRFLOW_HOME/figures.jsonl}"
mkdir -p "$AIRFLOW_HOME"
"$VENV/bin/python" -m pytest tests/test_e2e_celery.py -m celery -p no:cacheprovider -s -q ${PYTEST_ARGS:-}
echo "==> Figures (docs/scaling.md)"
cat "$COMMPEAK_CELERY_FIGURES"
