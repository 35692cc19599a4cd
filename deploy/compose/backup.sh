#!/usr/bin/env bash
# Online backup of the compose cluster: `keel operator snapshot save`
# streams a consistent snapshot of the replicated state (taken at a
# committed index, while the cluster keeps serving writes) into FILE,
# verified (SHA-256), fsynced and renamed into place. The CLI runs in a
# throwaway container of the keel image on the cluster's network, as the
# calling user, with FILE's directory mounted; it asks keel-0, then keel-1,
# then keel-2. The admin token comes from the secrets directory and is
# passed through the environment, never on a command line.
# Usage: deploy/compose/backup.sh FILE
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=compose.sh
source "$HERE/compose.sh"
FILE="${1:?usage: backup.sh FILE}"
mkdir -p "$(dirname "$FILE")"
DIR="$(cd "$(dirname "$FILE")" && pwd)"
NAME="$(basename "$FILE")"
KEEL_TOKEN="$(head -n1 "${KEEL_SECRETS_DIR:-$HERE/secrets}/admin-token")"
export KEEL_TOKEN

for n in 0 1 2; do
  if keel_cli "$DIR" rw "http://keel-$n:7400" operator snapshot save "/backup/$NAME"; then
    echo "backup: $FILE (from keel-$n)"
    exit 0
  fi
  echo "backup: keel-$n could not take the snapshot; trying the next node" >&2
done
echo "backup: no node could take the snapshot" >&2
exit 1
