# Sourced by scripts/bench.sh and scripts/chaos.sh: a PostgreSQL and a Kafka of the script's own,
# on loopback, under their own infra directory, so they never touch the test or development servers.
#
#   private_infra DIR PG_PORT KAFKA_PORT   uv and the workspace ready ($UV); PENSION_INFRA_DIR,
#                                          PENSION_PG_PORT, PENSION_KAFKA_PORT exported for the
#                                          deploy/local scripts; both servers stopped on exit
#   start_private_infra                    start both (after any further settings are exported)

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
MAIN_INFRA="${PENSION_INFRA_DIR:-$REPO/.infra}"
# A shared machine can be slow to start a JVM.
export PENSION_KAFKA_START_TIMEOUT="${PENSION_KAFKA_START_TIMEOUT:-300}"

private_infra() {
  local dir="$1" pg_port="$2" kafka_port="$3"
  UV="$(PENSION_INFRA_DIR="$MAIN_INFRA" scripts/ensure-uv.sh)"
  UV="$UV" scripts/sync.sh --quiet
  # The broker's jars are the same for every infra directory: use what `make test` fetched.
  if [[ -f "$MAIN_INFRA/kafka/libs/.complete" && ! -e "$dir/kafka/libs" ]]; then
    mkdir -p "$dir/kafka"
    ln -s "$MAIN_INFRA/kafka/libs" "$dir/kafka/libs"
  fi
  export PENSION_INFRA_DIR="$dir" PENSION_PG_PORT="$pg_port" PENSION_KAFKA_PORT="$kafka_port"
  trap _stop_private_infra EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
}

start_private_infra() {
  deploy/local/postgres.sh start >&2
  deploy/local/kafka.sh start >&2
}

_stop_private_infra() {
  local rc=$?
  trap - EXIT INT TERM
  deploy/local/kafka.sh stop >/dev/null 2>&1 || true
  deploy/local/postgres.sh stop >/dev/null 2>&1 || true
  exit "$rc"
}
