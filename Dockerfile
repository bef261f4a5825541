# syntax=docker/dockerfile:1
# One image for every role:
#   API (default):  docker run -p 8000:8000 IMAGE
#   worker:         docker run IMAGE agentrun worker
#   migrations:     docker run IMAGE alembic upgrade head
# Configuration comes from AGENTRUN_* environment variables (app/core/config.py).

ARG PYTHON_IMAGE=python:3.12-slim

FROM ${PYTHON_IMAGE} AS builder
# UV_COMPILE_BYTECODE: the .pyc files written at install, as pip did; with
# PYTHONDONTWRITEBYTECODE nothing writes them later, and each start would compile every module.
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    UV_PROJECT_ENVIRONMENT=/opt/venv \
    UV_PYTHON_DOWNLOADS=never \
    UV_LINK_MODE=copy \
    UV_NO_CACHE=1 \
    UV_COMPILE_BYTECODE=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /app

# uv at the lock's version, into the builder's own Python (not /opt/venv: the image ships
# only what the service needs).
COPY pyproject.toml uv.lock README.md ./
RUN /usr/local/bin/python -m pip install "uv==$(/usr/local/bin/python -c 'import tomllib; print(next(p["version"] for p in tomllib.load(open("uv.lock", "rb"))["package"] if p["name"] == "uv"))')"

# Dependencies first, exactly as uv.lock names them (no extras), so a code change reuses
# this layer.
RUN /usr/local/bin/uv sync --frozen --no-install-project

# The project itself, editable (uv's default for the project): the venv gets the
# distribution metadata (the agentrun.execution_definitions entry points, the `agentrun`
# script) while the code stays in /app, so any non-Python file beside it is found exactly as
# in a checkout.
COPY app ./app
COPY workers ./workers
# The public package plugins import (agentrun, agentrun.testing): an image a plugin is
# installed into has it.
COPY agentrun ./agentrun
RUN /usr/local/bin/uv sync --frozen


FROM ${PYTHON_IMAGE} AS runtime
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    AGENTRUN_MEDIA_ROOT=/data/media
RUN groupadd --system --gid 10001 agentrun \
    && useradd --system --uid 10001 --gid agentrun --home-dir /app --no-create-home \
        --shell /usr/sbin/nologin agentrun \
    && mkdir -p /data/media \
    && chown agentrun:agentrun /data/media
WORKDIR /app
# Same paths as in the builder: the venv's scripts and the editable finder point at them.
COPY --from=builder /opt/venv /opt/venv
COPY --from=builder /app/app ./app
COPY --from=builder /app/workers ./workers
COPY --from=builder /app/agentrun ./agentrun
COPY alembic.ini ./
COPY migrations ./migrations

USER 10001:10001
EXPOSE 8000 9100
# Only meaningful for the API; compose disables it for the worker and migrate services.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4)"]
# Which proxies' X-Forwarded-* headers count is the app's AGENTRUN_TRUSTED_PROXIES; uvicorn's
# own FORWARDED_ALLOW_IPS stays at its default (loopback only).
# X-Forwarded-* are handled by the app itself, for AGENTRUN_TRUSTED_PROXIES only: uvicorn's own
# handling would rewrite the client address first.
CMD ["uvicorn", "app.main:app", "--host", "0.0.0.0", "--port", "8000", "--no-proxy-headers", "--timeout-graceful-shutdown", "30"]
