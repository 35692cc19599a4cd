#!/usr/bin/env bash
# Cold backup of the compose cluster: stops all three nodes gracefully
# (keel flushes and closes RocksDB on SIGTERM), archives each node's /data
# to DIR/keel-N-data.tar.gz with `docker cp` (no other image needed), and
# starts them again, waiting until healthy. The cluster is unavailable for
# the few seconds this takes; the three archives are one consistent point.
# Usage: deploy/compose/backup.sh DIR
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=compose.sh
source "$HERE/compose.sh"
DIR="${1:?usage: backup.sh DIR}"
mkdir -p "$DIR"

compose stop
for n in 0 1 2; do
  id="$(node_container "$n")"
  [ -n "$id" ] || { echo "backup: no container for keel-$n" >&2; exit 1; }
  docker cp "$id:/data" - | gzip >"$DIR/keel-$n-data.tar.gz"
  echo "backup: keel-$n -> $DIR/keel-$n-data.tar.gz"
done
compose start
wait_healthy "${KEEL_UP_TIMEOUT:-180}"
echo "backup: done; cluster healthy again"
