# syntax=docker/dockerfile:1
# Container image of the sidecar: one Python process, no shell-outs, no helm.
#
#   docker build -t interlink-k8s-sidecar .
#   docker run --read-only -v /path/to/remote-kubeconfig.yaml:/etc/interlink-sidecar/remote-kubeconfig.yaml:ro \
#     -p 4000:4000 -p 8090:8090 interlink-k8s-sidecar
#
# The build stage turns the source into a wheel and collects the dependencies as
# binary wheels (no compiler is needed, none is installed); the final stage installs
# only those wheels, removes pip, and runs as uid 10001. At run time the process
# writes only to app.state_dir (a volume) and, with a unix-socket listener, the
# socket's directory: the root filesystem can be read-only.

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
# The image's default configuration: the plugin API on TCP 4000 and the ops server
# (/healthz, /readyz, /metrics) on 8090, on every interface of the container. Mount your
# own file over it or pass --config; SECTION_KEY environment variables override any key.
COPY --chmod=0644 <<'EOF' /etc/interlink-sidecar/config.ini
[app]
socket_address = http://0.0.0.0
socket_port = 4000
ops_address = 0.0.0.0
ops_port = 8090
state_dir = /var/lib/interlink-k8s-sidecar

[k8s]
kubeconfig_path = /etc/interlink-sidecar/remote-kubeconfig.yaml
EOF
USER 10001:10001
VOLUME ["/var/lib/interlink-k8s-sidecar"]
EXPOSE 4000 8090
ENTRYPOINT ["interlink-k8s-sidecar"]
