# Second step of build-local.sh: adds what `docker import` cannot set
# (health check, stop signal, labels) to the imported root filesystem.
# FROM a local image: nothing is pulled.
ARG BASE=keel:rootfs
FROM ${BASE}
LABEL org.opencontainers.image.title="keel" \
      org.opencontainers.image.description="Raft-backed control-plane node (locally built)"
HEALTHCHECK --interval=5s --timeout=3s --start-period=60s --retries=3 \
  CMD ["/usr/local/bin/keel", "health"]
STOPSIGNAL SIGTERM
