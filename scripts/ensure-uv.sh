#!/usr/bin/env bash
# Make sure the `uv` package manager is available.
#
# If `uv` is already on PATH it is used as is. Otherwise uv is installed from PyPI into a
# private virtualenv under ${PENSION_INFRA_DIR:-<repo>/.infra}/uv-venv and linked as
# <infra>/bin/uv (the Makefile puts <infra>/bin first on PATH).
# Prints the path of the uv executable on stdout; progress messages go to stderr.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
INFRA="${PENSION_INFRA_DIR:-$REPO/.infra}"
VENV="$INFRA/uv-venv"
BIN="$INFRA/bin"

log() { echo "ensure-uv: $*" >&2; }
die() { echo "ensure-uv: ERROR: $*" >&2; exit 1; }

if uv_path="$(command -v uv 2>/dev/null)" && "$uv_path" --version >/dev/null 2>&1; then
  log "using $uv_path ($("$uv_path" --version))"
  echo "$uv_path"
  exit 0
fi
if [[ -x "$BIN/uv" ]] && "$BIN/uv" --version >/dev/null 2>&1; then
  log "using $BIN/uv ($("$BIN/uv" --version))"
  echo "$BIN/uv"
  exit 0
fi

PY=""
for cand in python3 python3.11 python3.12 python3.13 python; do
  if command -v "$cand" >/dev/null 2>&1 && "$cand" -c 'import sys; sys.exit(sys.version_info < (3, 8))' 2>/dev/null; then
    PY="$(command -v "$cand")"
    break
  fi
done
if [[ -z "$PY" ]]; then
  [[ "$(id -u)" == 0 ]] || die "no python3 found and not root (cannot apt-get install python3)"
  log "no python3 found; installing Debian python3"
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3 python3-venv; } >&2 \
    || die "apt-get install python3 failed"
  PY="$(command -v python3)"
fi

log "uv not found on PATH; installing it from PyPI into $VENV (python: $PY)"
mkdir -p "$INFRA" "$BIN"
rm -rf "$VENV"
if ! "$PY" -m venv "$VENV" >&2 2>/dev/null; then
  # Debian ships venv without ensurepip unless python3-venv is installed.
  if [[ "$(id -u)" == 0 ]] && command -v apt-get >/dev/null 2>&1; then
    log "python venv module unusable; installing Debian python3-venv"
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv; } >&2 || true
  fi
  rm -rf "$VENV"
  "$PY" -m venv "$VENV" >&2 || VENV=""
fi

if [[ -n "$VENV" ]]; then
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check uv >&2 || die "pip install uv failed"
  ln -sf "$VENV/bin/uv" "$BIN/uv"
else
  # Last resort: a user install (PEP 668 distributions need --break-system-packages for that).
  log "venv not available; falling back to pip install --user uv"
  "$PY" -m pip install --quiet --disable-pip-version-check --user uv >&2 \
    || "$PY" -m pip install --quiet --disable-pip-version-check --user --break-system-packages uv >&2 \
    || die "pip install --user uv failed"
  user_bin="$("$PY" -c 'import site, os; print(os.path.join(site.USER_BASE, "bin"))')"
  ln -sf "$user_bin/uv" "$BIN/uv"
fi

"$BIN/uv" --version >/dev/null 2>&1 || die "installed uv does not run ($BIN/uv)"
log "installed $("$BIN/uv" --version) at $BIN/uv"
echo "$BIN/uv"
