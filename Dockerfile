# opex-bridge: one image for every service, the sandbox and the ops command.
#   docker build -t opexbridge .
#   docker run --rm opexbridge python -m opexbridge.cli --help
# Dependencies come from uv.lock (uv sync --frozen), without the dev group.

ARG PYTHON_VERSION=3.11

FROM python:${PYTHON_VERSION}-slim AS build
COPY --from=ghcr.io/astral-sh/uv:0.9 /uv /uvx /bin/
ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    UV_PROJECT_ENVIRONMENT=/app/.venv
WORKDIR /app
# the locked dependencies first: this layer is rebuilt only when the lock changes
COPY pyproject.toml uv.lock README.md ./
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-dev --no-install-project
COPY shared ./shared
COPY services ./services
COPY opexbridge ./opexbridge
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-dev

FROM python:${PYTHON_VERSION}-slim
RUN groupadd --system --gid 999 opexbridge \
    && useradd --system --uid 999 --gid opexbridge --home-dir /app --no-create-home opexbridge
WORKDIR /app
COPY --from=build /app /app
ENV PATH=/app/.venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
USER opexbridge
# every service listens on 127.0.0.1 unless told otherwise: the compose file and the
# Kubernetes manifests set <SERVICE>_HOST=0.0.0.0
CMD ["python", "-m", "opexbridge.cli", "--help"]
