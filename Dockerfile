# Container image of the sidecar: one Python process, no shell-outs, no helm.
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY sidecar ./sidecar
COPY tunnel ./tunnel
COPY metrics ./metrics
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim
RUN useradd --system --uid 10001 --home-dir /nonexistent sidecar
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
COPY manifests/examples/config.sample.ini /etc/interlink-sidecar/config.ini
USER 10001
ENV CONFIG_FILE_PATH=/etc/interlink-sidecar/config.ini
EXPOSE 4000 8090
ENTRYPOINT ["interlink-k8s-sidecar"]
