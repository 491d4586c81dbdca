# syntax=docker/dockerfile:1
# The gateway image: built in one stage, run from a slim, non-root stage without build tools.
# Build: docker build -t phi-gateway .   Run: docker run -p 8080:8080 -e GATEWAY__... phi-gateway
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 PIP_NO_INPUT=1
WORKDIR /src
# aiohttp, orjson and uvloop ship manylinux wheels, so no compiler is needed even here.
RUN python -m venv /opt/venv
COPY pyproject.toml README.md ./
COPY gateway ./gateway
RUN /opt/venv/bin/pip install . \
 && /opt/venv/bin/pip uninstall -y pip

FROM ${PYTHON_IMAGE} AS runtime
RUN groupadd --system --gid 10001 gateway \
 && useradd --system --uid 10001 --gid gateway --no-create-home --shell /usr/sbin/nologin gateway
COPY --from=build /opt/venv /opt/venv
COPY config/gateway.production.toml /app/config/gateway.production.toml
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    GATEWAY_CONFIG=/app/config/gateway.production.toml \
    GATEWAY__SERVER__HOST=0.0.0.0
WORKDIR /app
USER 10001:10001
EXPOSE 8080
# SIGTERM reaches `gateway` as PID 1 (exec form), which drains its workers (server.drain_timeout_s).
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 \
  CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=2)"]
# One worker per vCPU unless GATEWAY__SERVER__WORKERS says otherwise (server.workers = 0).
ENTRYPOINT ["gateway"]
CMD ["serve"]
