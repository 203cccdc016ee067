#!/usr/bin/env bash
# Fault injection under load (issue 8), as run by `make chaos` and `make chaos QUICK=1`:
#   uv + workspace -> a PostgreSQL and a Kafka of its own on loopback (the broker with one proxied
#   listener per service) -> python -m chaos, which restarts both many times -> stop both.
#
# Its servers live under ${PENSION_CHAOS_INFRA_DIR:-<infra>/chaos} on 127.0.0.1:${PENSION_CHAOS_PG_PORT:-29590}
# and 127.0.0.1:${PENSION_CHAOS_KAFKA_PORT:-29290} (the broker also listens on the next five ports, and the
# services' proxies on the five after), so it never touches the test, development or benchmark servers.
# The ports lie below Linux's ephemeral range (32768-60999): while a server restarts, its ports are
# free, and no outgoing connection may take one of them meanwhile.
# Arguments are passed to `python -m chaos` (see `python -m chaos --help`).
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
MAIN_INFRA="${PENSION_INFRA_DIR:-$REPO/.infra}"
CHAOS_INFRA="${PENSION_CHAOS_INFRA_DIR:-$MAIN_INFRA/chaos}"
PG_PORT="${PENSION_CHAOS_PG_PORT:-29590}"
KAFKA_PORT="${PENSION_CHAOS_KAFKA_PORT:-29290}"
# A shared machine can be slow to start a JVM.
export PENSION_KAFKA_START_TIMEOUT="${PENSION_KAFKA_START_TIMEOUT:-300}"

UV="$(PENSION_INFRA_DIR="$MAIN_INFRA" scripts/ensure-uv.sh)"
"$UV" sync --all-packages --quiet

# The broker's jars are the same for every infra directory: use what `make test` fetched.
if [[ -f "$MAIN_INFRA/kafka/libs/.complete" && ! -e "$CHAOS_INFRA/kafka/libs" ]]; then
  mkdir -p "$CHAOS_INFRA/kafka"
  ln -s "$MAIN_INFRA/kafka/libs" "$CHAOS_INFRA/kafka/libs"
fi

# One proxied listener per service (account, fund-account, tax, payout): the broker listens on
# KAFKA_PORT+2..+5 and advertises KAFKA_PORT+7..+10, where python -m chaos runs the proxies.
PROXIED=""
for i in 0 1 2 3; do
  PROXIED+="${PROXIED:+,}$((KAFKA_PORT + 2 + i)):$((KAFKA_PORT + 7 + i))"
done
# Exported: python -m chaos restarts both servers through the same scripts, with the same settings.
export PENSION_INFRA_DIR="$CHAOS_INFRA" PENSION_PG_PORT="$PG_PORT" PENSION_KAFKA_PORT="$KAFKA_PORT"
export PENSION_KAFKA_PROXIED="$PROXIED"
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

export CHAOS_PG_URL="postgresql+psycopg://postgres@127.0.0.1:$PG_PORT/postgres"
export CHAOS_KAFKA="127.0.0.1:$KAFKA_PORT"
export CHAOS_INFRA_DIR="$CHAOS_INFRA"
"$UV" run --no-sync python -m chaos "$@"
