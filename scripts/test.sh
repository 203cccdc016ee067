#!/usr/bin/env bash
# Full test run, as used by `make test` and .ci/run:
#   uv + Python deps -> extra tools (kcat, docker compose) -> real PostgreSQL + Kafka -> pytest.
# PostgreSQL and Kafka are always stopped again on exit.
#
# Extra pytest arguments: scripts/test.sh -k ledger -x   or   make test PYTEST_ARGS="-k ledger -x"
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
export PENSION_INFRA_DIR="${PENSION_INFRA_DIR:-$REPO/.infra}"
PG_PORT="${PENSION_PG_PORT:-55432}"
KAFKA_PORT="${PENSION_KAFKA_PORT:-19092}"

T0="$(date +%s.%N)"
elapsed() { awk -v a="$T0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }'; }
step() { echo "==> [$(elapsed) s] $*"; }

if [[ $# -eq 0 && -n "${PYTEST_ARGS:-}" ]]; then
  # Called directly with PYTEST_ARGS in the environment (make passes them as arguments).
  read -r -a _args <<<"$PYTEST_ARGS"
  set -- "${_args[@]}"
fi

step "ensure uv"
UV="$(scripts/ensure-uv.sh)"
export PATH="$(dirname "$UV"):$PATH"

step "uv sync --all-packages, bytecode compiled (scripts/sync.sh)"
UV="$UV" scripts/sync.sh

step "ensure tools (kcat, docker compose)"
scripts/ensure-tools.sh

cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  echo "==> stopping infrastructure"
  deploy/local/kafka.sh stop || true
  deploy/local/postgres.sh stop || true
  echo "==> total elapsed: $(elapsed) s (exit code $rc)"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

step "start PostgreSQL"
deploy/local/postgres.sh start
step "start Kafka"
deploy/local/kafka.sh start

export PENSION_TEST_PG_URL="postgresql+psycopg://postgres@127.0.0.1:$PG_PORT/postgres"
export PENSION_TEST_KAFKA="127.0.0.1:$KAFKA_PORT"
export PENSION_REQUIRE_INFRA=1

step "pytest $*"
rc=0
"$UV" run --no-sync pytest -p no:cacheprovider "$@" || rc=$?
if [[ $rc -eq 5 ]]; then
  echo "==> pytest collected NO tests (exit code 5): treating this as a failure" >&2
fi
exit "$rc"
