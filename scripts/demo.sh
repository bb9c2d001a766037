#!/usr/bin/env bash
# `make demo`: run example DAG commpeak_send_and_wait end to end in a real Airflow (SQLite) against
# a local CommPeak sandbox, then print what was sent and delivered. Exits non-zero if the DAG failed.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
DAG_ID=${DAG_ID:-commpeak_send_and_wait}
export AIRFLOW_HOME="$PWD/.airflow-demo"
export AIRFLOW__CORE__DAGS_FOLDER="$PWD/example_dags"
export AIRFLOW__CORE__LOAD_EXAMPLES=False
export PATH="$PWD/$VENV/bin:$PATH"

rm -rf "$AIRFLOW_HOME"
mkdir -p "$AIRFLOW_HOME"

echo "==> Starting the CommPeak sandbox on 127.0.0.1"
commpeak-sandbox --port 0 --delivery-delay 2 >"$AIRFLOW_HOME/sandbox.log" 2>&1 &
SANDBOX_PID=$!
trap 'kill "$SANDBOX_PID" 2>/dev/null || true; wait "$SANDBOX_PID" 2>/dev/null || true' EXIT
deadline=$((SECONDS + 30))
until grep -q "listening on" "$AIRFLOW_HOME/sandbox.log"; do
  if ((SECONDS > deadline)) || ! kill -0 "$SANDBOX_PID" 2>/dev/null; then
    echo "The sandbox did not start:" >&2; cat "$AIRFLOW_HOME/sandbox.log" >&2; exit 1
  fi
  sleep 0.2
done
SANDBOX_URL=$(sed -n 's/.*listening on \(http:[^ ]*\).*/\1/p' "$AIRFLOW_HOME/sandbox.log")
export SANDBOX_URL
export AIRFLOW_CONN_COMMPEAK_DEFAULT="{\"conn_type\": \"commpeak\", \"password\": \"sandbox-key\", \"host\": \"$SANDBOX_URL\"}"
echo "    $SANDBOX_URL"

echo "==> airflow db migrate (SQLite in $AIRFLOW_HOME)"
airflow db migrate >"$AIRFLOW_HOME/db-migrate.log" 2>&1 || { tail -20 "$AIRFLOW_HOME/db-migrate.log" >&2; exit 1; }

echo "==> airflow dags test $DAG_ID (log: $AIRFLOW_HOME/dags-test.log)"
status=0
airflow dags test "$DAG_ID" >"$AIRFLOW_HOME/dags-test.log" 2>&1 || status=$?

python scripts/demo_summary.py "$DAG_ID" || status=$?
if [ "$status" -ne 0 ]; then
  echo "The DAG run failed; the last lines of its log:" >&2
  tail -30 "$AIRFLOW_HOME/dags-test.log" >&2
fi
exit "$status"
