#!/usr/bin/env bash
# Brings up the three-node keel cluster with one command: builds keel:local
# (deploy/docker/build-local.sh; skipped when KEEL_IMAGE names another
# image or KEEL_SKIP_BUILD=1), creates the secret files if missing, starts
# the containers and waits until Docker reports every node healthy
# (`keel health` -> /readyz). Extra arguments go to `compose up`
# (e.g. --force-recreate). Bounded by KEEL_UP_TIMEOUT seconds (default 180).
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=compose.sh
source "$HERE/compose.sh"

if [ -z "${KEEL_IMAGE:-}" ] && [ "${KEEL_SKIP_BUILD:-0}" != 1 ]; then
  "$HERE/../docker/build-local.sh"
fi
"$HERE/secrets.sh"

started=$(date +%s)
compose up -d "$@"

wait_healthy "${KEEL_UP_TIMEOUT:-180}"
echo "up: 3 nodes healthy after $(($(date +%s) - started))s"
echo "up: API at http://127.0.0.1:${KEEL_API_PORT_0:-17400} (and :${KEEL_API_PORT_1:-17401}, :${KEEL_API_PORT_2:-17402})"
echo "up: export KEEL_ADDR=http://127.0.0.1:${KEEL_API_PORT_0:-17400} KEEL_TOKEN=\$(head -n1 ${KEEL_SECRETS_DIR:-$HERE/secrets}/admin-token)"
