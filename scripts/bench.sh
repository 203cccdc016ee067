#!/usr/bin/env bash
# The benchmark (issue 7), as run by `make bench` and `make bench QUICK=1`:
#   uv + workspace -> a PostgreSQL and a Kafka of its own on loopback -> python -m bench -> stop both.
#
# Its servers live under ${PENSION_BENCH_INFRA_DIR:-<infra>/bench} on 127.0.0.1:${PENSION_BENCH_PG_PORT:-55490}
# and 127.0.0.1:${PENSION_BENCH_KAFKA_PORT:-19190}, so it never touches the test or development servers.
# Arguments are passed to `python -m bench` (see `python -m bench --help`).
set -euo pipefail

source "$(dirname "${BASH_SOURCE[0]}")/private-infra.sh"
BENCH_INFRA="${PENSION_BENCH_INFRA_DIR:-$MAIN_INFRA/bench}"
PG_PORT="${PENSION_BENCH_PG_PORT:-55490}"
KAFKA_PORT="${PENSION_BENCH_KAFKA_PORT:-19190}"
private_infra "$BENCH_INFRA" "$PG_PORT" "$KAFKA_PORT"
start_private_infra

export BENCH_PG_URL="postgresql+psycopg://postgres@127.0.0.1:$PG_PORT/postgres"
export BENCH_KAFKA="127.0.0.1:$KAFKA_PORT"
export BENCH_INFRA_DIR="$BENCH_INFRA"
"$UV" run --no-sync python -m bench "$@"
