#!/usr/bin/env bash
# The workspace's environment as the service images have it (deploy/Dockerfile sets
# UV_COMPILE_BYTECODE=1): every package installed, and the bytecode of the dependencies and of
# the workspace's own sources compiled ahead.
#
# Without it, a process that may not write bytecode (PYTHONDONTWRITEBYTECODE set, as on some
# machines, or a read-only tree) compiles every module it imports from source each time it starts:
# about 2 s per process on two cores, for each of the 23 processes `make bench` starts at once.
# Compiling is incremental: an unchanged tree costs well under a second.
#
# Arguments go to `uv sync` (e.g. --quiet).
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
UV="${UV:-$(scripts/ensure-uv.sh)}"

"$UV" sync --all-packages --compile-bytecode "$@"
# Editable workspace members are not in site-packages, so uv does not compile them.
"$UV" run --no-sync python -m compileall -q -j 0 shared/src services/*/src cli/src bench >/dev/null
