#!/usr/bin/env bash
# Restores a backup.sh backup: removes the cluster's containers AND data
# volumes, creates them afresh without starting them, unpacks each node's
# archive into its own volume (keel-0's into keel-0's, ...) through a
# stopped helper container of the keel image, then starts the nodes and
# waits until healthy. Everything written after the backup is gone.
# Usage: deploy/compose/restore.sh DIR
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=compose.sh
source "$HERE/compose.sh"
DIR="${1:?usage: restore.sh DIR}"
for n in 0 1 2; do
  [ -s "$DIR/keel-$n-data.tar.gz" ] || { echo "restore: $DIR/keel-$n-data.tar.gz missing" >&2; exit 1; }
done

compose down -v --remove-orphans
compose up --no-start
for n in 0 1 2; do
  volume="$(docker inspect -f '{{range .Mounts}}{{if eq .Destination "/data"}}{{.Name}}{{end}}{{end}}' "$(node_container "$n")")"
  helper="$(docker create -v "$volume:/data" "${KEEL_IMAGE:-keel:local}")"
  gunzip -c "$DIR/keel-$n-data.tar.gz" | docker cp - "$helper:/"
  docker rm "$helper" >/dev/null
  echo "restore: $DIR/keel-$n-data.tar.gz -> $volume"
done
compose start
wait_healthy "${KEEL_UP_TIMEOUT:-180}"
echo "restore: done; cluster healthy"
