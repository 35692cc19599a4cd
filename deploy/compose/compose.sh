# Sourced by the compose scripts: `compose ARGS...` runs Docker Compose v2
# (`docker compose`) when the plugin is installed, else docker-compose v1,
# always with this directory's docker-compose.yml and project name
# $KEEL_PROJECT (default keel). Extra files: KEEL_COMPOSE_FILES (colon list).
# Also: `node_container N` (container id of keel-N, running or not),
# `wait_healthy SECONDS` (until Docker reports all three nodes healthy) and
# `keel_cli DIR rw|ro ADDR ARGS...` (the keel CLI in a throwaway container
# on the cluster's network, DIR mounted at /backup, KEEL_TOKEN passed on).
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

node_container() {
  docker ps -aq --filter "label=com.docker.compose.project=$KEEL_PROJECT" \
    --filter "label=com.docker.compose.service=keel-$1"
}

wait_healthy() {
  local deadline=$(($(date +%s) + $1)) healthy n id state
  while :; do
    healthy=0
    for n in 0 1 2; do
      id="$(node_container "$n")"
      [ -n "$id" ] || continue
      state="$(docker inspect -f '{{if .State.Health}}{{.State.Health.Status}}{{else}}{{.State.Status}}{{end}}' "$id")"
      [ "$state" = healthy ] && healthy=$((healthy + 1))
    done
    [ "$healthy" -eq 3 ] && return 0
    if [ "$(date +%s)" -ge "$deadline" ]; then
      echo "compose: only $healthy of 3 nodes healthy after ${1}s" >&2
      compose ps >&2
      compose logs --tail=30 >&2
      return 1
    fi
    sleep 1
  done
}

keel_cli() {
  local dir="$1" mode="$2" addr="$3" network
  shift 3
  network="$(docker inspect -f '{{range $k, $v := .NetworkSettings.Networks}}{{$k}} {{end}}' \
    "$(node_container 0)" | awk '{print $1}')"
  docker run --rm --network "$network" --user "$(id -u):$(id -g)" \
    -v "$dir:/backup:$mode" -e KEEL_TOKEN -e "KEEL_ADDR=$addr" \
    "${KEEL_IMAGE:-keel:local}" "$@"
}
