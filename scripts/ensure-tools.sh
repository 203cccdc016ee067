#!/usr/bin/env bash
# Install the non-Python tools the test suite needs, idempotently:
#   * kcat                     (Debian package)
#   * chromium                 (Debian package; the operator console's browser test drives it headless
#                               through Playwright, never with a browser build of Playwright's own)
#   * a `docker compose` CLI    (only used for `docker compose config`; no Docker engine needed)
#   * the official AsyncAPI parser (npm @asyncapi/parser, run by node) in <infra>/asyncapi, which the
#     contract tests use to validate shared/src/pension_shared/contracts/asyncapi.yaml
#   * kubeconform (built from the Go module proxy into <infra>/bin/kubeconform) and the Kubernetes JSON
#     schemas it checks deploy/k8s/ against, taken from the PyPI wheel kubernetes-validate (which ships
#     them) into <infra>/kubernetes-json-schema/v<K8S>-standalone-strict/ (kubeconform's default schema
#     download from GitHub is never used)
#
# docker compose, in order of preference:
#   1. `docker compose version` already works                      -> nothing to do
#   2. cached build in <infra>/bin/docker-compose                    -> (re)link it as the CLI plugin
#   3. build compose v2 from the Go module proxy with `go install`  -> cache in <infra>/bin, link as plugin
#      (if `go` is missing or too old, a Go toolchain is taken from the module proxy: golang.org/toolchain)
#   4. last resort: Debian's `docker-compose` (v1) wrapped as a CLI plugin
# The plugin goes to ${DOCKER_CONFIG:-~/.docker}/cli-plugins/docker-compose.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
INFRA="${PENSION_INFRA_DIR:-$REPO/.infra}"
BIN="$INFRA/bin"
COMPOSE_VERSION="${PENSION_COMPOSE_VERSION:-v2.29.7}"
ASYNCAPI_PARSER_VERSION="${PENSION_ASYNCAPI_PARSER_VERSION:-3.6.3}"
GO_TOOLCHAIN_VERSION="${PENSION_GO_TOOLCHAIN:-go1.23.4}"
KUBECONFORM_VERSION="${PENSION_KUBECONFORM_VERSION:-v0.8.0}"
K8S_SCHEMA_VERSION="${PENSION_K8S_SCHEMA_VERSION:-1.32.0}"
K8S_SCHEMA_PACKAGE_VERSION="${PENSION_K8S_SCHEMA_PACKAGE_VERSION:-1.37.0}"
PLUGIN_DIR="${DOCKER_CONFIG:-$HOME/.docker}/cli-plugins"
GOPROXY_URL="${GOPROXY:-https://proxy.golang.org}"
GOPROXY_URL="${GOPROXY_URL%%,*}"
[[ "$GOPROXY_URL" == direct || "$GOPROXY_URL" == off ]] && GOPROXY_URL=https://proxy.golang.org

log() { echo "ensure-tools: $*" >&2; }
die() { echo "ensure-tools: ERROR: $*" >&2; exit 1; }
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }
is_root() { [[ "$(id -u)" == 0 ]]; }

APT_UPDATED=0
apt_install() {
  is_root || die "need root to apt-get install $*"
  command -v apt-get >/dev/null 2>&1 || die "apt-get not available; install $* by hand"
  if [[ $APT_UPDATED == 0 ]]; then
    apt-get update -qq >&2 || die "apt-get update failed"
    APT_UPDATED=1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >&2
}

# ---------------------------------------------------------------- kcat
ensure_kcat() {
  if command -v kcat >/dev/null 2>&1; then
    log "kcat: present ($(command -v kcat))"
    return 0
  fi
  log "kcat: installing Debian package"
  apt_install kcat || die "apt-get install kcat failed"
  command -v kcat >/dev/null 2>&1 || die "kcat still not on PATH after apt-get install"
  log "kcat: installed ($(command -v kcat))"
}

# ---------------------------------------------------------------- chromium
ensure_chromium() {
  if command -v chromium >/dev/null 2>&1; then
    log "chromium: present ($(command -v chromium))"
    return 0
  fi
  log "chromium: installing Debian packages chromium and fonts-noto-cjk"
  apt_install chromium fonts-noto-cjk || die "apt-get install chromium failed"
  command -v chromium >/dev/null 2>&1 || die "chromium still not on PATH after apt-get install"
  log "chromium: installed ($(chromium --version 2>/dev/null))"
}

# ---------------------------------------------------------------- docker compose
compose_works() { command -v docker >/dev/null 2>&1 && docker compose version >/dev/null 2>&1; }

link_plugin() {
  mkdir -p "$PLUGIN_DIR"
  ln -sfn "$1" "$PLUGIN_DIR/docker-compose"
}

go_usable() {
  # compose v2.29 needs Go >= 1.21; since 1.21 `go` can also switch toolchains by itself.
  local g="$1" v
  [[ -x "$g" ]] || return 1
  v="$("$g" env GOVERSION 2>/dev/null)" || return 1
  v="${v#go}"
  awk -v v="$v" 'BEGIN { split(v, a, "."); exit !((a[1] > 1) || (a[1] == 1 && a[2] >= 21)) }'
}

fetch_go_toolchain() {
  # The Go module proxy serves complete Go toolchains as the module golang.org/toolchain.
  local arch goroot zip mod
  case "$(uname -m)" in
    x86_64) arch=amd64 ;;
    aarch64 | arm64) arch=arm64 ;;
    *) return 1 ;;
  esac
  mod="v0.0.1-$GO_TOOLCHAIN_VERSION.linux-$arch"
  goroot="$INFRA/go-toolchain/golang.org/toolchain@$mod"
  if [[ ! -x "$goroot/bin/go" ]]; then
    log "docker compose: fetching Go toolchain $GO_TOOLCHAIN_VERSION from the Go module proxy"
    mkdir -p "$INFRA/go-toolchain"
    zip="$INFRA/go-toolchain/$mod.zip"
    curl -fsSL --retry 3 -o "$zip" "$GOPROXY_URL/golang.org/toolchain/@v/$mod.zip" || return 1
    python3 - "$zip" "$INFRA/go-toolchain" <<'PY' || return 1
import os, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z:
    for info in z.infolist():
        path = z.extract(info, sys.argv[2])
        mode = (info.external_attr >> 16) & 0o777
        if mode:
            os.chmod(path, mode)
        elif "/bin/" in info.filename or "/pkg/tool/" in info.filename:
            os.chmod(path, 0o755)
PY
    rm -f "$zip"
  fi
  [[ -x "$goroot/bin/go" ]] && echo "$goroot/bin/go"
}

build_compose_with_go() {
  local go="" t0 gobin
  if command -v go >/dev/null 2>&1 && go_usable "$(command -v go)"; then
    go="$(command -v go)"
  elif [[ -x /usr/local/go/bin/go ]] && go_usable /usr/local/go/bin/go; then
    go=/usr/local/go/bin/go
  else
    go="$(fetch_go_toolchain)" || { log "docker compose: could not get a Go toolchain"; return 1; }
  fi
  log "docker compose: building github.com/docker/compose/v2 $COMPOSE_VERSION with $go ($("$go" env GOVERSION)); takes ~2-3 min the first time"
  t0="$(now)"
  gobin="$INFRA/gobin"
  mkdir -p "$gobin" "$BIN"
  if ! GOBIN="$gobin" GOFLAGS=-mod=mod GOTOOLCHAIN="${GOTOOLCHAIN:-auto}" CGO_ENABLED=0 \
    "$go" install -trimpath \
    -ldflags "-s -w -X github.com/docker/compose/v2/internal.Version=$COMPOSE_VERSION" \
    "github.com/docker/compose/v2/cmd@$COMPOSE_VERSION" >&2; then
    log "docker compose: go install failed"
    return 1
  fi
  mv -f "$gobin/cmd" "$BIN/docker-compose"
  log "docker compose: built $BIN/docker-compose in $(elapsed "$t0") s"
}

install_compose_v1_shim() {
  log "docker compose: LAST RESORT - installing Debian docker-compose (v1) behind a CLI-plugin shim"
  command -v docker-compose >/dev/null 2>&1 || apt_install docker-compose || return 1
  mkdir -p "$BIN"
  cat >"$BIN/docker-compose-v1-plugin" <<'SH'
#!/usr/bin/env bash
# docker CLI plugin shim forwarding `docker compose ...` to Debian's docker-compose v1.
if [[ "${1:-}" == docker-cli-plugin-metadata ]]; then
  echo '{"SchemaVersion":"0.1.0","Vendor":"Debian docker-compose v1 shim","Version":"1","ShortDescription":"Docker Compose (v1)"}'
  exit 0
fi
[[ "${1:-}" == compose ]] && shift
exec docker-compose "$@"
SH
  chmod +x "$BIN/docker-compose-v1-plugin"
  link_plugin "$BIN/docker-compose-v1-plugin"
}

ensure_compose() {
  if compose_works; then
    log "docker compose: present ($(docker compose version 2>/dev/null | head -n1))"
    return 0
  fi
  command -v docker >/dev/null 2>&1 || log "docker compose: WARNING no docker CLI on PATH; the standalone binary will be at $BIN/docker-compose"
  local t0
  t0="$(now)"
  if [[ -x "$BIN/docker-compose" ]] && "$BIN/docker-compose" version >/dev/null 2>&1; then
    log "docker compose: using cached build $BIN/docker-compose"
  else
    build_compose_with_go || true
  fi
  if [[ -x "$BIN/docker-compose" ]] && "$BIN/docker-compose" version >/dev/null 2>&1; then
    link_plugin "$BIN/docker-compose"
  else
    install_compose_v1_shim || die "could not provide docker compose (go build and Debian docker-compose both failed)"
  fi
  if command -v docker >/dev/null 2>&1; then
    compose_works || die "docker compose still does not work (plugin at $PLUGIN_DIR/docker-compose)"
    log "docker compose: ready in $(elapsed "$t0") s ($(docker compose version | head -n1))"
  fi
}

# ---------------------------------------------------------------- AsyncAPI parser
ensure_asyncapi_parser() {
  local dir="$INFRA/asyncapi" installed=""
  if [[ -f "$dir/node_modules/@asyncapi/parser/package.json" ]]; then
    installed="$(node -p "require('$dir/node_modules/@asyncapi/parser/package.json').version" 2>/dev/null || true)"
  fi
  if [[ "$installed" == "$ASYNCAPI_PARSER_VERSION" ]]; then
    log "asyncapi parser: present (@asyncapi/parser $installed in $dir)"
    return 0
  fi
  if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    log "asyncapi parser: installing Debian packages nodejs and npm"
    apt_install nodejs npm || die "apt-get install nodejs npm failed"
  fi
  log "asyncapi parser: npm install @asyncapi/parser@$ASYNCAPI_PARSER_VERSION into $dir"
  mkdir -p "$dir"
  [[ -f "$dir/package.json" ]] || echo '{"name": "pension-asyncapi-tools", "private": true}' >"$dir/package.json"
  npm install --prefix "$dir" --no-audit --no-fund --loglevel=error \
    "@asyncapi/parser@$ASYNCAPI_PARSER_VERSION" >&2 || die "npm install @asyncapi/parser failed"
  log "asyncapi parser: installed (@asyncapi/parser $ASYNCAPI_PARSER_VERSION)"
}

# ---------------------------------------------------------------- kubeconform + Kubernetes schemas
find_go() {
  if command -v go >/dev/null 2>&1 && go_usable "$(command -v go)"; then
    command -v go
  elif [[ -x /usr/local/go/bin/go ]] && go_usable /usr/local/go/bin/go; then
    echo /usr/local/go/bin/go
  else
    fetch_go_toolchain
  fi
}

ensure_kubeconform() {
  local have="" go t0 gobin
  if [[ -x "$BIN/kubeconform" ]]; then
    have="$("$BIN/kubeconform" -v 2>/dev/null || true)"
  fi
  if [[ "$have" == "$KUBECONFORM_VERSION" ]]; then
    log "kubeconform: present ($BIN/kubeconform $have)"
    return 0
  fi
  go="$(find_go)" || die "kubeconform: no Go toolchain (needed to build it from the Go module proxy)"
  log "kubeconform: go install github.com/yannh/kubeconform/cmd/kubeconform@$KUBECONFORM_VERSION"
  t0="$(now)"
  gobin="$INFRA/gobin"
  mkdir -p "$gobin" "$BIN"
  GOBIN="$gobin" GOFLAGS=-mod=mod GOTOOLCHAIN="${GOTOOLCHAIN:-auto}" CGO_ENABLED=0 \
    "$go" install -trimpath -ldflags "-s -w -X main.version=$KUBECONFORM_VERSION" \
    "github.com/yannh/kubeconform/cmd/kubeconform@$KUBECONFORM_VERSION" >&2 || die "kubeconform: go install failed"
  mv -f "$gobin/kubeconform" "$BIN/kubeconform"
  log "kubeconform: built $BIN/kubeconform in $(elapsed "$t0") s"
}

pip_download() {
  if python3 -m pip --version >/dev/null 2>&1; then
    python3 -m pip download --quiet --no-deps "$@"
  elif command -v uvx >/dev/null 2>&1; then
    uvx --from pip pip download --quiet --no-deps "$@"
  else
    die "neither pip nor uvx is available to download from PyPI"
  fi
}

ensure_k8s_schemas() {
  # The wheel ships the schemas in a "local" layout: $ids under https://kubernetes.io/api/ and $refs to
  # /api/_definitions.json. kubeconform resolves $refs against the file it loads, so each file's $id is
  # dropped and the $refs are made relative to the file's own directory (no network at validation time).
  local dest="$INFRA/kubernetes-json-schema" dir stamp tmp
  dir="$dest/v$K8S_SCHEMA_VERSION-standalone-strict"
  stamp="kubernetes-validate==$K8S_SCHEMA_PACKAGE_VERSION v$K8S_SCHEMA_VERSION-local-strict"
  if [[ -f "$dir/.source" && "$(cat "$dir/.source")" == "$stamp" ]]; then
    log "kubernetes schemas: present ($dir, from $stamp)"
    return 0
  fi
  log "kubernetes schemas: downloading kubernetes-validate==$K8S_SCHEMA_PACKAGE_VERSION from PyPI"
  tmp="$(mktemp -d)"
  pip_download "kubernetes-validate==$K8S_SCHEMA_PACKAGE_VERSION" --only-binary :all: -d "$tmp" >&2 \
    || { rm -rf "$tmp"; die "kubernetes schemas: pip download kubernetes-validate failed"; }
  rm -rf "$dir" "$dir.part"
  mkdir -p "$dest"
  python3 - "$tmp"/kubernetes_validate-*.whl "v$K8S_SCHEMA_VERSION-local-strict" "$dir" <<'PY' >&2 \
    || { rm -rf "$tmp" "$dir.part"; die "kubernetes schemas: extracting failed"; }
import json, os, sys, zipfile

wheel, version, out = sys.argv[1:4]
prefix = f"kubernetes_validate/kubernetes-json-schema/{version}/"
REMOTE = "/api/_definitions.json#"


def local(node, own):
    if isinstance(node, dict):
        return {k: (("#" if own else "_definitions.json#") + v[len(REMOTE):]
                    if k == "$ref" and isinstance(v, str) and v.startswith(REMOTE) else local(v, own))
                for k, v in node.items() if k != "$id"}
    if isinstance(node, list):
        return [local(v, own) for v in node]
    return node


os.makedirs(out + ".part", exist_ok=True)
count = 0
with zipfile.ZipFile(wheel) as z:
    for name in z.namelist():
        if not (name.startswith(prefix) and name.endswith(".json")):
            continue
        base = name[len(prefix):]
        with open(os.path.join(out + ".part", base), "w") as fh:
            json.dump(local(json.loads(z.read(name)), own=(base == "_definitions.json")), fh)
        count += 1
if count == 0:
    sys.exit(f"no schemas under {prefix} in {wheel}")
os.rename(out + ".part", out)
print(f"{count} schemas in {out}")
PY
  echo "$stamp" >"$dir/.source"
  rm -rf "$tmp"
  log "kubernetes schemas: installed in $dir"
}

ensure_kcat
ensure_chromium
ensure_compose
ensure_asyncapi_parser
ensure_kubeconform
ensure_k8s_schemas
