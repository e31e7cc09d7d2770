#!/usr/bin/env bash
# Side-by-side HTTP benchmark: pixfit against thumbor (PyPI, Pillow engine) and ipx (npm,
# on sharp/libvips), on this machine, one worker per core each, 127.0.0.1 only.
#
#     bash bench/server.sh
#
# Installs what is missing (wrk, plasma-workspace-wallpapers, libjpeg-turbo-progs for the
# codec floor, apache2 and apache2-dev for mod_wsgi, with apt when root; thumbor into
# bench/.peers/thumbor; ipx into bench/.peers/ipx; pixfit's .venv and mod_wsgi), then
# runs bench/server_peers.py, which starts every server, then workload by workload checks
# each server's outputs, loads it with wrk, and prints one table plus the goal ratios.
#
# Environment: DURATION (seconds per run, default 20), WRK_THREADS (2), WRK_CONNECTIONS (8),
# WORKERS (one per core), PHOTOS (10), VARIANTS (1 = also the pixfit/ipx variant rows;
# 0 = only the main rows), ONLY (e.g. "pixfit,ipx"), QUIET_WAIT (seconds to wait before
# each run until other processes use at most QUIET_MAX_CORES cores; 90 and 0.5), KEEP
# (1 = keep the scratch folder with the server logs and the raw wrk output).
set -euo pipefail
cd "$(dirname "$0")/.."

THUMBOR_VERSION=7.8.0 # installs on Python 3.11 (7.7.7 does too); Pillow engine by default
IPX_VERSION=3.1.1     # ipx v3 on sharp 0.34; modifiers look like /w_800,q_80,f_jpeg/NAME
PEERS=bench/.peers

log() { printf '\n>> %s\n' "$*"; }

# --- system packages ---------------------------------------------------------------------
missing=()
command -v wrk >/dev/null || missing+=(wrk)
ls /usr/share/wallpapers/*/contents/images/*.jpg >/dev/null 2>&1 ||
  missing+=(plasma-workspace-wallpapers)
command -v djpeg >/dev/null && command -v cjpeg >/dev/null || missing+=(libjpeg-turbo-progs)
command -v apxs >/dev/null || [ -x /usr/bin/apxs ] || missing+=(apache2 apache2-dev)
if ((${#missing[@]})); then
  if [ "$(id -u)" -ne 0 ]; then
    echo "missing: ${missing[*]}; install them (sudo apt-get install ${missing[*]}) and rerun" >&2
    exit 1
  fi
  log "apt-get install ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
command -v node >/dev/null && command -v npm >/dev/null || {
  echo "node and npm are needed for ipx (apt-get install nodejs npm)" >&2
  exit 1
}

# --- pixfit ---------------------------------------------------------------------------
if [ ! -x .venv/bin/pixfit ] || [ ! -x .venv/bin/mod_wsgi-express ]; then
  log "building .venv and mod_wsgi (make .venv/.installed .venv/.mod_wsgi)"
  make .venv/.installed .venv/.mod_wsgi
fi

# --- thumbor --------------------------------------------------------------------------
if ! "$PEERS/thumbor/bin/python" -c "import thumbor, sys; sys.exit(thumbor.__version__ != '$THUMBOR_VERSION')" 2>/dev/null; then
  log "installing thumbor $THUMBOR_VERSION into $PEERS/thumbor"
  rm -rf "$PEERS/thumbor"
  python3 -m venv "$PEERS/thumbor"
  "$PEERS/thumbor/bin/pip" install --quiet --upgrade pip
  "$PEERS/thumbor/bin/pip" install --quiet "thumbor==$THUMBOR_VERSION"
fi

# --- ipx ------------------------------------------------------------------------------
installed_ipx=$(node -p "require('./$PEERS/ipx/node_modules/ipx/package.json').version" 2>/dev/null || true)
if [ "$installed_ipx" != "$IPX_VERSION" ]; then
  log "installing ipx $IPX_VERSION into $PEERS/ipx"
  mkdir -p "$PEERS/ipx"
  [ -f "$PEERS/ipx/package.json" ] || echo '{"private": true}' >"$PEERS/ipx/package.json"
  npm install --prefix "$PEERS/ipx" --no-audit --no-fund --loglevel=error "ipx@$IPX_VERSION"
fi
# Next to node_modules, so that `import "ipx"` resolves.
cp bench/server_ipx.mjs "$PEERS/ipx/server.mjs"

# --- run ------------------------------------------------------------------------------
workdir=$(mktemp -d -t pixfit-server-bench.XXXXXX)
runner=
cleanup() {
  status=$?
  trap - EXIT INT TERM
  if [ -n "$runner" ] && kill -0 "$runner" 2>/dev/null; then
    kill -TERM "$runner" 2>/dev/null || true
    wait "$runner" 2>/dev/null || true
  fi
  # Every server was started in its own process group; stop any the runner left behind.
  if [ -f "$workdir/pids" ]; then
    while read -r pid; do
      kill -TERM -- "-$pid" 2>/dev/null || true
    done <"$workdir/pids"
    sleep 1
    while read -r pid; do
      kill -KILL -- "-$pid" 2>/dev/null || true
    done <"$workdir/pids"
  fi
  if [ "${KEEP:-0}" = 1 ]; then
    echo "scratch folder kept: $workdir"
  else
    rm -rf "$workdir"
  fi
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

.venv/bin/python bench/server_peers.py --workdir "$workdir" &
runner=$!
wait "$runner"
