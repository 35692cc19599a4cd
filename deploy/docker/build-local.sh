#!/usr/bin/env bash
# Builds the keel image (keel:local) on a machine with a Docker engine but no
# registry: nothing is pulled. It packs the locally built debug binary, the
# shared libraries it links (from ldd) and a minimal /etc into a root
# filesystem tarball, `docker import`s it as keel:rootfs, then builds
# local.Dockerfile FROM it to add HEALTHCHECK and STOPSIGNAL.
#
# The result behaves like the image deploy/docker/Dockerfile builds:
# /usr/local/bin/keel, uid/gid 10001, data volume /data, ports 7400/7401.
#
# Usage: deploy/docker/build-local.sh [IMAGE]   (default keel:local)
# Env:   CARGO_TARGET_DIR (default $HOME/.cache/keel-target)
#        KEEL_BIN (default $CARGO_TARGET_DIR/debug/keel): the binary to pack,
#        e.g. a release build for a smaller image
set -euo pipefail

IMAGE="${1:-keel:local}"
ROOTFS_IMAGE="keel:rootfs"
KEEL_UID=10001
HERE="$(cd "$(dirname "$0")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/keel-target}"
BIN="${KEEL_BIN:-$CARGO_TARGET_DIR/debug/keel}"

if [ ! -x "$BIN" ]; then
  echo "build-local: $BIN missing; building it (dev profile)" >&2
  (cd "$REPO" && cargo build --bin keel)
fi

STAGE="$(mktemp -d "${TMPDIR:-/tmp}/keel-rootfs.XXXXXX")"
trap 'rm -rf "$STAGE"' EXIT
ROOT="$STAGE/root"
mkdir -p "$ROOT"/{usr/local/bin,etc,data,tmp}

# The binary, without debug sections or symbols (as release binaries of
# Vault or etcd ship): a release build packs to an image under 40 MB.
strip --strip-all -o "$ROOT/usr/local/bin/keel" "$BIN"
chmod 0755 "$ROOT/usr/local/bin/keel"

# Every shared library ldd names, and the dynamic loader, at the same paths.
# ldd prints `name => /path (addr)` for libraries, `/path (addr)` for the loader.
libs="$(ldd "$BIN" | awk '/=> \//{print $3} /^[ \t]*\/[^ ]+ \(/{print $1}')"
if ! grep -q 'ld-linux' <<<"$libs"; then
  echo "build-local: ldd named no dynamic loader for $BIN:" >&2
  ldd "$BIN" >&2
  exit 1
fi
for lib in $libs; do
  mkdir -p "$ROOT$(dirname "$lib")"
  cp -L "$lib" "$ROOT$lib"
done

# Minimal identity and name-service files: root, and the non-root user keel
# runs as. glibc reads nsswitch.conf for host lookups (peer names).
cat >"$ROOT/etc/passwd" <<PASSWD
root:x:0:0:root:/root:/usr/sbin/nologin
keel:x:$KEEL_UID:$KEEL_UID:keel:/data:/usr/sbin/nologin
PASSWD
cat >"$ROOT/etc/group" <<GROUP
root:x:0:
keel:x:$KEEL_UID:
GROUP
cat >"$ROOT/etc/nsswitch.conf" <<'NSS'
passwd: files
group:  files
hosts:  files dns
NSS

# Pack: everything root-owned, /tmp world-writable, /data owned by keel
# (Docker copies that ownership into a fresh named volume).
chmod 1777 "$ROOT/tmp"
chmod 0700 "$ROOT/data"
TAR="$STAGE/rootfs.tar"
tar -C "$ROOT" --numeric-owner --owner=0 --group=0 -cf "$TAR" \
  --exclude=./data ./usr ./etc ./tmp $(cd "$ROOT" && ls -d ./lib* 2>/dev/null)
tar -C "$ROOT" --numeric-owner --owner="$KEEL_UID" --group="$KEEL_UID" -rf "$TAR" ./data

docker import \
  --change "ENV PATH=/usr/local/bin:/usr/bin:/bin" \
  --change "USER $KEEL_UID:$KEEL_UID" \
  --change "WORKDIR /data" \
  --change "VOLUME /data" \
  --change "EXPOSE 7400 7401" \
  --change 'ENTRYPOINT ["/usr/local/bin/keel"]' \
  --change 'CMD ["server"]' \
  "$TAR" "$ROOTFS_IMAGE" >/dev/null

# The legacy builder never pulls a FROM image that exists locally; BuildKit
# resolves it locally too when it is present. The context is an empty dir.
mkdir -p "$STAGE/ctx"
if ! docker build --build-arg BASE="$ROOTFS_IMAGE" -f "$HERE/local.Dockerfile" \
     -t "$IMAGE" "$STAGE/ctx" >"$STAGE/build.log" 2>&1; then
  cat "$STAGE/build.log" >&2
  exit 1
fi
# Smoke test: the binary starts inside the image.
docker run --rm "$IMAGE" --version >/dev/null
echo "build-local: built $IMAGE ($(docker image inspect -f '{{.Size}}' "$IMAGE" | awk '{printf "%.0f MB", $1/1e6}'))"
