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

source "$(dirname "${BASH_SOURCE[0]}")/private-infra.sh"
CHAOS_INFRA="${PENSION_CHAOS_INFRA_DIR:-$MAIN_INFRA/chaos}"
PG_PORT="${PENSION_CHAOS_PG_PORT:-29590}"
KAFKA_PORT="${PENSION_CHAOS_KAFKA_PORT:-29290}"
# Exported: python -m chaos restarts both servers through the same scripts, with the same settings.
private_infra "$CHAOS_INFRA" "$PG_PORT" "$KAFKA_PORT"

# One proxied listener per service (account, fund-account, tax, payout): the broker listens on
# KAFKA_PORT+2..+5 and advertises KAFKA_PORT+7..+10, where python -m chaos runs the proxies.
PROXIED=""
for i in 0 1 2 3; do
  PROXIED+="${PROXIED:+,}$((KAFKA_PORT + 2 + i)):$((KAFKA_PORT + 7 + i))"
done
export PENSION_KAFKA_PROXIED="$PROXIED"
start_private_infra

export CHAOS_PG_URL="postgresql+psycopg://postgres@127.0.0.1:$PG_PORT/postgres"
export CHAOS_KAFKA="127.0.0.1:$KAFKA_PORT"
export CHAOS_INFRA_DIR="$CHAOS_INFRA"
"$UV" run --no-sync python -m chaos "$@"
