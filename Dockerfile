# syntax=docker/dockerfile:1
# Container image of the sidecar: one Python process, no shell-outs, no helm.
#
#   docker build -t interlink-k8s-sidecar .
#   docker run --read-only -v /path/to/remote-kubeconfig.yaml:/etc/interlink-sidecar/remote-kubeconfig.yaml:ro \
#     -v interlink-sockets:/var/run/interlink interlink-k8s-sidecar
#
# Closed by default: the plugin API has no authentication (interLink cannot send any),
# so the image's own configuration opens no port. The plugin API is the unix socket
# /var/run/interlink/plugin.sock (mode 0660: interLink's container, sharing that volume
# and the group 10001, connects; nobody else), and the ops server (/healthz, /readyz,
# /metrics) listens on 127.0.0.1:8090 only. Listening on the network is a choice made
# where the network is guarded (the Helm chart's deployment mode, with its
# NetworkPolicy), e.g. -e APP_SOCKET_ADDRESS=http://0.0.0.0 -e APP_SOCKET_PORT=4000
# -e APP_OPS_ADDRESS=0.0.0.0 -p 4000:4000 -p 8090:8090; the sidecar then logs a
# WARNING for each such listener at start.
#
# The build stage turns the source into a wheel and collects the dependencies as
# binary wheels (no compiler is needed, none is installed); the final stage installs
# only those wheels, removes pip, and runs as uid 10001. At run time the process
# writes only to app.state_dir and the socket's directory (both volumes): the root
# filesystem can be read-only.

FROM python:3.11.17-slim-bookworm AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY sidecar ./sidecar
COPY tunnel ./tunnel
COPY metrics ./metrics
RUN pip wheel --no-deps --wheel-dir /wheels . \
 && pip download --only-binary=:all: --dest /wheels /wheels/interlink_k8s_sidecar-*.whl

FROM python:3.11.17-slim-bookworm
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    CONFIG_FILE_PATH=/etc/interlink-sidecar/config.ini
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    pip install --no-index --find-links=/wheels interlink-k8s-sidecar \
 && pip uninstall --yes pip setuptools wheel \
 && groupadd --system --gid 10001 sidecar \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin sidecar \
 && install -d -o 10001 -g 10001 -m 0750 /var/lib/interlink-k8s-sidecar /var/run/interlink
# The image's default configuration (see the top of this file): the plugin API on a unix
# socket, the ops server on loopback. Mount your own file over it or pass --config;
# SECTION_KEY environment variables override any key.
COPY --chmod=0644 <<'EOF' /etc/interlink-sidecar/config.ini
[app]
socket_address = unix:///var/run/interlink/plugin.sock
socket_mode = 0660
ops_address = 127.0.0.1
ops_port = 8090
state_dir = /var/lib/interlink-k8s-sidecar

[k8s]
kubeconfig_path = /etc/interlink-sidecar/remote-kubeconfig.yaml
EOF
USER 10001:10001
# The journal of pending deletes, and the socket shared with interLink. No EXPOSE: the
# default configuration listens on no address outside the container.
VOLUME ["/var/lib/interlink-k8s-sidecar", "/var/run/interlink"]
ENTRYPOINT ["interlink-k8s-sidecar"]
