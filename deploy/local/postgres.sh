#!/usr/bin/env bash
# Local throw-away PostgreSQL server for tests and development.
#
#   deploy/local/postgres.sh start   # initdb a fresh cluster and start it on 127.0.0.1:${PENSION_PG_PORT:-55432}
#   deploy/local/postgres.sh stop    # stop it and delete the cluster
#   deploy/local/postgres.sh restart [fast|immediate]  # stop the server (default fast) and start it
#                                    # again on the SAME data, or start it if it is down (fault injection)
#
# Superuser "postgres", trust authentication, loopback TCP only. Connect with
#   postgresql+psycopg://postgres@127.0.0.1:55432/postgres
# PostgreSQL refuses to run as root, so the server runs as the "postgres" OS user.
# PENSION_PG_BIND_WAIT_S (default 90): how long start waits for a client socket on this machine
# to give the port up (see start).
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
INFRA="${PENSION_INFRA_DIR:-$REPO/.infra}"
PGROOT="$INFRA/pg"
DATA="$PGROOT/data"
SOCK="$PGROOT/sock"
LOGFILE="$PGROOT/server.log"
PORT="${PENSION_PG_PORT:-55432}"
BIND_WAIT_S="${PENSION_PG_BIND_WAIT_S:-90}"
HOST=127.0.0.1
PGUSER_OS=postgres

log() { echo "postgres: $*" >&2; }
die() { echo "postgres: ERROR: $*" >&2; exit 1; }
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

find_bindir() {
  local d
  # Newest installed major version first.
  for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -t/ -k4 -V -r); do
    if [[ -x "$d/initdb" && -x "$d/pg_ctl" && -x "$d/pg_isready" ]]; then
      echo "$d"
      return 0
    fi
  done
  return 1
}

ensure_postgres() {
  if BIN="$(find_bindir)"; then return 0; fi
  log "PostgreSQL binaries not found under /usr/lib/postgresql; installing Debian package 'postgresql'"
  [[ "$(id -u)" == 0 ]] || die "PostgreSQL is not installed and this script is not root (cannot apt-get install)"
  if ! { apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends postgresql; } >&2; then
    die "apt-get install postgresql FAILED"
  fi
  BIN="$(find_bindir)" || die "postgresql was installed but no initdb/pg_ctl found under /usr/lib/postgresql/*/bin"
}

# Run a command as the postgres OS user when we are root; as ourselves otherwise.
as_pg() {
  if [[ "$(id -u)" == 0 ]]; then
    runuser -u "$PGUSER_OS" -- "$@"
  else
    "$@"
  fi
}

ensure_os_user() {
  [[ "$(id -u)" == 0 ]] || return 0
  if ! id "$PGUSER_OS" >/dev/null 2>&1; then
    log "creating OS user $PGUSER_OS"
    useradd --system --user-group --home-dir /var/lib/postgresql --shell /bin/bash "$PGUSER_OS" \
      || die "could not create the $PGUSER_OS OS user"
  fi
}

# The postgres user must be able to traverse every parent directory of $PGROOT.
ensure_traversable() {
  [[ "$(id -u)" == 0 ]] || return 0
  local d="$PGROOT"
  while [[ "$d" != "/" && -n "$d" ]]; do
    d="$(dirname "$d")"
    if ! runuser -u "$PGUSER_OS" -- test -x "$d" 2>/dev/null; then
      chmod o+x "$d" || die "$PGUSER_OS cannot enter $d; choose another PENSION_INFRA_DIR"
    fi
  done
}

port_open() { (exec 3<>"/dev/tcp/$HOST/$1") 2>/dev/null; }

is_running() {
  [[ -f "$DATA/postmaster.pid" ]] && as_pg "$BIN/pg_ctl" -D "$DATA" status >/dev/null 2>&1
}

# Start the server on the cluster in $DATA and wait until it accepts connections; on failure, show
# what it logged and die with $1.
launch() {
  local opts="-h $HOST -p $PORT -k $SOCK -c fsync=on -c max_connections=300 -c shared_buffers=256MB"
  # The port lies in Linux's range for the local ends of outgoing connections (32768-60999): a
  # loopback client of another server (a benchmark's, say) may hold it as its own end, or leave it
  # in TIME_WAIT for a minute after closing; while no server listens, a client connecting to the
  # port may even be given it as its own end and connect to itself. Nothing listens there, so the
  # server cannot bind it until that socket is gone: wait for it, BIND_WAIT_S at most. Only what
  # this attempt logged is read (pg_ctl appends to the log).
  local bind_deadline=$((SECONDS + BIND_WAIT_S)) waited="" from
  until from="$(stat -c %s "$LOGFILE" 2>/dev/null || echo 0)"
    as_pg "$BIN/pg_ctl" -D "$DATA" -l "$LOGFILE" -w -t 60 -o "$opts" start >/dev/null 2>&1 \
      && as_pg "$BIN/pg_isready" -q -h "$HOST" -p "$PORT" -t 30; do
    if tail -c "+$((from + 1))" "$LOGFILE" 2>/dev/null | grep -q 'could not bind .*Address already in use' \
        && ((SECONDS < bind_deadline)); then
      [[ -n "$waited" ]] || log "$HOST:$PORT is held by a client socket on this machine; waiting up to ${BIND_WAIT_S} s for it to go"
      waited=1
      sleep 2
      continue
    fi
    echo "----- $LOGFILE (this attempt) -----" >&2
    tail -c "+$((from + 1))" "$LOGFILE" >&2 || true
    die "$1"
  done
}

start() {
  ensure_postgres
  ensure_os_user
  if [[ -d "$DATA" ]] && is_running; then
    log "a server from a previous start is still running; stopping it first"
    stop
  fi
  if port_open "$PORT"; then
    die "port $HOST:$PORT is already in use by another process; set PENSION_PG_PORT to a free port"
  fi

  local t0
  t0="$(now)"
  mkdir -p "$PGROOT"
  rm -rf "$DATA" "$SOCK"
  mkdir -p "$DATA" "$SOCK"
  : >"$LOGFILE"
  if [[ "$(id -u)" == 0 ]]; then
    chown "$PGUSER_OS:" "$PGROOT" "$DATA" "$SOCK" "$LOGFILE"
    ensure_traversable
  fi
  chmod 700 "$DATA"

  # Text is compared bytewise (LC_COLLATE C), as deploy/postgres/init-databases.sql asks of the
  # services' databases: for UTF-8 that is the order of code points, the order C.UTF-8 gives and
  # Python's, but PostgreSQL 15 takes its fast path only for "C" (no strcoll, abbreviated sort
  # keys): index builds on identifiers a quarter faster. Character classes stay C.UTF-8's.
  local locale=C.UTF-8
  locale -a 2>/dev/null | grep -qiE '^c\.utf-?8$' || locale=C
  if ! as_pg "$BIN/initdb" -D "$DATA" -A trust -U postgres -E UTF8 --locale="$locale" --lc-collate=C \
      >"$PGROOT/initdb.log" 2>&1; then
    cat "$PGROOT/initdb.log" >&2
    die "initdb failed"
  fi

  launch "PostgreSQL did not start"
  echo "postgres: up on $HOST:$PORT after $(elapsed "$t0") s ($("$BIN/postgres" --version | awk '{print $3}'), data $DATA)"
}

stop() {
  BIN="$(find_bindir)" || { echo "postgres: not installed, nothing to stop"; return 0; }
  if [[ -d "$DATA" ]] && is_running; then
    as_pg "$BIN/pg_ctl" -D "$DATA" -m fast -w -t 30 stop >/dev/null 2>&1 \
      || as_pg "$BIN/pg_ctl" -D "$DATA" -m immediate -w -t 30 stop >/dev/null 2>&1 \
      || log "pg_ctl stop failed"
    echo "postgres: stopped"
  else
    echo "postgres: not running"
  fi
  rm -rf "$DATA" "$SOCK"
}

restart() {
  local mode="${1:-fast}"
  [[ "$mode" == fast || "$mode" == immediate ]] || die "restart mode must be fast or immediate, not '$mode'"
  BIN="$(find_bindir)" || die "PostgreSQL is not installed"
  [[ -f "$DATA/PG_VERSION" ]] || die "no cluster in $DATA; use start"
  local t0
  t0="$(now)"
  # Stopped and started again with start's options, so that it waits for the port as start does.
  # A server already down (a restart that failed half way, say) is only started: restarting is
  # bringing the server back on the same data, and may be tried again.
  if is_running && ! as_pg "$BIN/pg_ctl" -D "$DATA" -m "$mode" -w -t 60 stop >/dev/null 2>&1; then
    die "PostgreSQL did not stop (-m $mode)"
  fi
  launch "PostgreSQL did not come back after restart -m $mode"
  echo "postgres: restarted ($mode) on $HOST:$PORT after $(elapsed "$t0") s"
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  restart) restart "${2:-fast}" ;;
  *) echo "usage: $0 {start|stop|restart [fast|immediate]}" >&2; exit 2 ;;
esac
