#!/usr/bin/env bash
# lidm on Airflow without Docker: the api-server, scheduler, dag-processor, triggerer and a Celery worker as
# separate processes, Airflow's metadata and the central database on PostgreSQL, Celery's broker on Redis.
# README: "Run it without Docker" walks through what each step does; CI runs this script (tests/test_airflow_local.py).
#
#   scripts/airflow-local.sh init [CONNECTIONS.json]   # databases, migrations, keyring, pools, connections (idempotent)
#   scripts/airflow-local.sh start    # the five processes, in the background; returns once the UI answers
#   scripts/airflow-local.sh status   # which processes run
#   scripts/airflow-local.sh stop     # stops them (TERM, then KILL after 30 s)
#
# Everything is configured by environment variables, with defaults for one machine (trust auth on PostgreSQL,
# Redis on 127.0.0.1). Connections: a JSON file of name -> URL (`lidm sample`'s connections.json), else LIDM_CONNECTIONS.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BIN="${LIDM_BIN:-$ROOT/.venv/bin}"
DEPLOY="${LIDM_DEPLOY_HOME:-$ROOT/.lidm/airflow-local}"
PG="${LIDM_PG:-postgresql://postgres@127.0.0.1:5432}"            # a login that may create databases
AIRFLOW_DB="${LIDM_AIRFLOW_DB:-lidm_airflow}"
CENTRAL_DB="${LIDM_CENTRAL_DB:-lidm_central}"
PORT="${LIDM_AIRFLOW_PORT:-8080}"
REDIS="${LIDM_REDIS_URL:-redis://127.0.0.1:6379/0}"
PROCESSES=(api-server scheduler dag-processor triggerer worker)

export AIRFLOW_HOME="$DEPLOY/airflow"
export LIDM_HOME="${LIDM_HOME:-$DEPLOY/lidm}"
export LIDM_KEYRING="${LIDM_KEYRING:-$LIDM_HOME/keyring.json}"
export LIDM_CENTRAL_URL="${LIDM_CENTRAL_URL:-${PG/postgresql:/postgresql+psycopg:}/$CENTRAL_DB}"
export LIDM_CACHE_DIR="${LIDM_CACHE_DIR:-$DEPLOY/cache}"
export AIRFLOW__CORE__DAGS_FOLDER="$ROOT/dags"
export AIRFLOW__CORE__PLUGINS_FOLDER="$ROOT/plugins"
export AIRFLOW__CORE__LOAD_EXAMPLES=False
export AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION=True
export AIRFLOW__CORE__EXECUTOR=CeleryExecutor
export AIRFLOW__DATABASE__SQL_ALCHEMY_CONN="${PG/postgresql:/postgresql+psycopg2:}/$AIRFLOW_DB"
export AIRFLOW__CELERY__BROKER_URL="$REDIS"
export AIRFLOW__CELERY__RESULT_BACKEND="db+${PG}/$AIRFLOW_DB"
export AIRFLOW__CORE__EXECUTION_API_SERVER_URL="http://127.0.0.1:$PORT/execution/"
export AIRFLOW__CORE__AUTH_MANAGER=airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager
export AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS="${LIDM_AIRFLOW_USERS:-admin:admin}"
export AIRFLOW__PROVIDERS_ODBC__ALLOW_DRIVER_IN_EXTRA=True
export AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK=True

# Secrets every process must share (the workers' tokens are signed by the api-server; connections' passwords are
# encrypted with the Fernet key): made once, kept 0600 in a 0700 folder.
secret() {
  local file="$DEPLOY/secrets/$1"
  if [[ ! -s "$file" ]]; then
    mkdir -p "$DEPLOY/secrets" && chmod 700 "$DEPLOY/secrets"
    (umask 077 && "$BIN/python" -c "$2" >"$file")
  fi
  cat "$file"
}
export AIRFLOW__API_AUTH__JWT_SECRET="$(secret jwt 'import secrets; print(secrets.token_urlsafe(32))')"
export AIRFLOW__API__SECRET_KEY="$(secret api 'import secrets; print(secrets.token_urlsafe(32))')"
export AIRFLOW__CORE__FERNET_KEY="$(secret fernet 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())')"

create_db() {
  "$BIN/python" - "$PG" "$1" <<'PY'
import sys, psycopg
admin, name = sys.argv[1], sys.argv[2]
with psycopg.connect(f"{admin}/postgres", autocommit=True) as conn:
    if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
        conn.execute(f'CREATE DATABASE "{name}"')
PY
}

init() {
  mkdir -p "$AIRFLOW_HOME" "$LIDM_HOME" "$DEPLOY/logs"
  create_db "$AIRFLOW_DB"
  create_db "$CENTRAL_DB"
  "$BIN/airflow" db migrate >"$DEPLOY/logs/migrate.log" 2>&1 || { tail -20 "$DEPLOY/logs/migrate.log"; exit 1; }
  [[ -s "$LIDM_KEYRING" ]] || "$BIN/lidm" keys init --path "$LIDM_KEYRING"
  "$BIN/lidm" db upgrade
  "$BIN/lidm" airflow pools --out "$DEPLOY/pools.json" >/dev/null
  "$BIN/airflow" pools import "$DEPLOY/pools.json" >/dev/null
  local from=()
  [[ -n "${1:-}" ]] && from=(--connections "$1")
  if [[ -n "${1:-}" || -n "${LIDM_CONNECTIONS:-}" ]]; then
    "$BIN/lidm" airflow connections "${from[@]}" --out "$DEPLOY/connections.json" >/dev/null
    "$BIN/airflow" connections import --overwrite "$DEPLOY/connections.json" >/dev/null
  fi
  echo "initialised: Airflow home $AIRFLOW_HOME, central database $CENTRAL_DB, keyring $LIDM_KEYRING"
}

running() { [[ -s "$DEPLOY/run/$1.pid" ]] && kill -0 "$(cat "$DEPLOY/run/$1.pid")" 2>/dev/null; }

start() {
  mkdir -p "$DEPLOY/run" "$DEPLOY/logs"
  for p in "${PROCESSES[@]}"; do
    if running "$p"; then echo "$p already runs"; continue; fi
    case "$p" in
      api-server) cmd=("$BIN/airflow" api-server -H 127.0.0.1 -p "$PORT" -w 1) ;;
      worker) cmd=("$BIN/airflow" celery worker --concurrency "${LIDM_WORKER_CONCURRENCY:-2}") ;;
      *) cmd=("$BIN/airflow" "$p") ;;
    esac
    # Its own session: stopping it stops the children it forks (uvicorn, Celery's pool, the parsing processes).
    setsid nohup "${cmd[@]}" >"$DEPLOY/logs/$p.log" 2>&1 </dev/null &
    echo $! >"$DEPLOY/run/$p.pid"
  done
  # The UI (and the execution API the workers report to) answers once the api-server is up.
  for _ in $(seq 1 "${LIDM_START_WAIT_SECONDS:-240}"); do
    if "$BIN/python" -c "import urllib.request, sys; urllib.request.urlopen('http://127.0.0.1:$PORT/api/v2/version', timeout=2)" 2>/dev/null; then
      status
      echo "Airflow UI: http://127.0.0.1:$PORT (users: ${AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS}; passwords in $AIRFLOW_HOME)"
      return 0
    fi
    for p in "${PROCESSES[@]}"; do running "$p" || { echo "$p stopped; see $DEPLOY/logs/$p.log"; tail -20 "$DEPLOY/logs/$p.log"; exit 1; }; done
    sleep 1
  done
  echo "the api-server did not answer in time; see $DEPLOY/logs/api-server.log"
  exit 1
}

status() {
  for p in "${PROCESSES[@]}"; do
    if running "$p"; then echo "$p: running (pid $(cat "$DEPLOY/run/$p.pid"))"; else echo "$p: stopped"; fi
  done
}

stop() {
  for p in "${PROCESSES[@]}"; do
    if running "$p"; then kill -TERM -- "-$(cat "$DEPLOY/run/$p.pid")" 2>/dev/null || true; fi
  done
  for _ in $(seq 1 30); do
    alive=0
    for p in "${PROCESSES[@]}"; do running "$p" && alive=1; done
    [[ $alive == 0 ]] && break
    sleep 1
  done
  for p in "${PROCESSES[@]}"; do
    if running "$p"; then kill -KILL -- "-$(cat "$DEPLOY/run/$p.pid")" 2>/dev/null || true; fi
    rm -f "$DEPLOY/run/$p.pid"
  done
  echo "stopped"
}

case "${1:-}" in
  init) init "${2:-}" ;;
  start) start ;;
  status) status ;;
  stop) stop ;;
  env) env | grep -E '^(AIRFLOW|LIDM)_' | grep -v -E 'SECRET|FERNET|PASSWORD' | sort ;;
  *) echo "usage: $0 init|start|status|stop|env" >&2; exit 2 ;;
esac
