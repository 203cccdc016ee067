#!/usr/bin/env bash
# The benchmark (issue 7), as run by `make bench` and `make bench QUICK=1`:
#   uv + workspace -> a PostgreSQL and a Kafka of its own on loopback -> python -m bench -> stop both.
#
# Its servers live under ${PENSION_BENCH_INFRA_DIR:-<infra>/bench} on 127.0.0.1:${PENSION_BENCH_PG_PORT:-55490}
# and 127.0.0.1:${PENSION_BENCH_KAFKA_PORT:-19190}, so it never touches the test or development servers.
# Arguments are passed to `python -m bench` (see `python -m bench --help`).
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
MAIN_INFRA="${PENSION_INFRA_DIR:-$REPO/.infra}"
BENCH_INFRA="${PENSION_BENCH_INFRA_DIR:-$MAIN_INFRA/bench}"
PG_PORT="${PENSION_BENCH_PG_PORT:-55490}"
KAFKA_PORT="${PENSION_BENCH_KAFKA_PORT:-19190}"
# A shared machine can be slow to start a JVM.
export PENSION_KAFKA_START_TIMEOUT="${PENSION_KAFKA_START_TIMEOUT:-300}"

UV="$(PENSION_INFRA_DIR="$MAIN_INFRA" scripts/ensure-uv.sh)"
"$UV" sync --all-packages --quiet

# The broker's jars are the same for every infra directory: reuse what `make test` fetched.
if [[ -f "$MAIN_INFRA/kafka/libs/.complete" && ! -f "$BENCH_INFRA/kafka/libs/.complete" ]]; then
  mkdir -p "$BENCH_INFRA/kafka"
  cp -r "$MAIN_INFRA/kafka/libs" "$BENCH_INFRA/kafka/"
fi

export PENSION_INFRA_DIR="$BENCH_INFRA" PENSION_PG_PORT="$PG_PORT" PENSION_KAFKA_PORT="$KAFKA_PORT"
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  deploy/local/kafka.sh stop >/dev/null 2>&1 || true
  deploy/local/postgres.sh stop >/dev/null 2>&1 || true
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

deploy/local/postgres.sh start >&2
deploy/local/kafka.sh start >&2

export BENCH_PG_URL="postgresql+psycopg://postgres@127.0.0.1:$PG_PORT/postgres"
export BENCH_KAFKA="127.0.0.1:$KAFKA_PORT"
export BENCH_INFRA_DIR="$BENCH_INFRA"
"$UV" run --no-sync python -m bench "$@"
