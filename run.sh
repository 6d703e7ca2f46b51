#!/usr/bin/env bash
# Installs autoplay into .venv (first run, and again whenever pyproject.toml changes), then runs:
#   ./run.sh demo [options]   the main job: the loop against the sandbox on the embedded defaults
#   ./run.sh test [args]      the test suite (pytest)
#   ./run.sh ARGS...          any other `autoplay` command
set -euo pipefail
cd "$(dirname "$0")"

python=${PYTHON:-}
if [ -z "$python" ]; then
  for candidate in python3.11 python3; do
    if command -v "$candidate" >/dev/null && "$candidate" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
      python=$candidate; break
    fi
  done
fi
[ -n "$python" ] || { echo "autoplay needs Python 3.11 (bpy 5.0 wheels exist only for it); set PYTHON=" >&2; exit 2; }

if [ ! -x .venv/bin/autoplay ] || [ pyproject.toml -nt .venv/.installed ]; then
  echo "Installing autoplay and its dependencies into .venv ..." >&2
  "$python" -m venv .venv
  .venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip
  .venv/bin/python -m pip install --quiet --disable-pip-version-check -e '.[render,dev]' 2> >(grep -v "^WARNING: Location" >&2)
  touch .venv/.installed
fi

# The console's browser tests drive Debian's chromium (Playwright's own browser download needs the internet).
need_chromium() {
  command -v chromium >/dev/null && return 0
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "Installing Debian's chromium for the console's browser tests ..." >&2
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) >/dev/null
  else
    echo "the console's browser tests need chromium: sudo apt-get install chromium" >&2; exit 2
  fi
}

# The distributed tests (render steps on Celery workers) start Debian's redis-server as the broker.
need_redis() {
  command -v redis-server >/dev/null && return 0
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "Installing Debian's redis-server for the distributed tests ..." >&2
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server) >/dev/null
    command -v systemctl >/dev/null && systemctl disable --now redis-server >/dev/null 2>&1 || true
  else
    echo "the distributed tests need redis-server: sudo apt-get install redis-server" >&2; exit 2
  fi
}

# They also run the Dagster instance and MLflow on a PostgreSQL server they start (Debian's binaries).
need_postgres() {
  ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 && return 0
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "Installing Debian's postgresql for the distributed tests ..." >&2
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql) >/dev/null
    command -v systemctl >/dev/null && systemctl disable --now postgresql >/dev/null 2>&1 || true
  else
    echo "the distributed tests need PostgreSQL: sudo apt-get install postgresql" >&2; exit 2
  fi
}

# Every process here (the daemon's runs, the workers, the tests' servers) reuses compiled modules rather than
# compiling the project again; pytest keeps its rewritten test modules the same way.
unset PYTHONDONTWRITEBYTECODE

command=${1:-demo}
[ $# -gt 0 ] && shift
case "$command" in
  test) need_chromium; need_redis; need_postgres; exec .venv/bin/python -m pytest "$@" ;;
  *) exec .venv/bin/autoplay "$command" "$@" ;;
esac
