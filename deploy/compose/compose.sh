# Sourced by the compose scripts: `compose ARGS...` runs Docker Compose v2
# (`docker compose`) when the plugin is installed, else docker-compose v1,
# always with this directory's docker-compose.yml and project name
# $KEEL_PROJECT (default keel). Extra files: KEEL_COMPOSE_FILES (colon list).
KEEL_COMPOSE_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
KEEL_PROJECT="${KEEL_PROJECT:-keel}"

compose() {
  local files=(-f "$KEEL_COMPOSE_DIR/docker-compose.yml") extra
  if [ -n "${KEEL_COMPOSE_FILES:-}" ]; then
    IFS=: read -r -a extra <<<"$KEEL_COMPOSE_FILES"
    for f in "${extra[@]}"; do files+=(-f "$f"); done
  fi
  if docker compose version >/dev/null 2>&1; then
    docker compose -p "$KEEL_PROJECT" "${files[@]}" "$@"
  else
    docker-compose -p "$KEEL_PROJECT" "${files[@]}" "$@"
  fi
}
