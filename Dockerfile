# syntax=docker/dockerfile:1.7
# Track AI service image. One Dockerfile for the six services (they differ only in which
# workspace member is installed); one image per service, run as several processes
# (`python -m trackai_<svc> serve|consume|migrate`; the Helm chart sets the command).
# Build from the workspace root, which holds uv.lock and every member's pyproject.toml:
#   docker build --build-arg SERVICE=ingestion -t <registry>/trackai/ingestion:<tag> .

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ghcr.io/astral-sh/uv:0.13.9 AS uv

# The console's browser packages (htmx, its SSE extension, Chart.js) from npm by the lock file,
# as `make console-assets` installs them locally; never committed, never a CDN.
FROM node:20-bookworm-slim AS console-assets
WORKDIR /frontend
COPY services/console/frontend/package.json services/console/frontend/package-lock.json ./
RUN npm ci --no-audit --no-fund && VENDOR_DIR=/vendor npm run --silent vendor

FROM ${PYTHON_IMAGE} AS build
ARG SERVICE
RUN test -n "$SERVICE" || (echo 'build with --build-arg SERVICE=<service>' >&2; exit 1)
COPY --from=uv /uv /usr/local/bin/uv
ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    UV_PYTHON=python3.11 \
    UV_PROJECT_ENVIRONMENT=/app/.venv
WORKDIR /app

# Third-party dependencies first, from the lock alone: this layer is rebuilt only when a
# manifest or uv.lock changes. uv needs every member's manifest to read the workspace.
COPY pyproject.toml uv.lock ./
COPY libs/kit/pyproject.toml libs/kit/
COPY libs/protos/pyproject.toml libs/protos/
COPY libs/testing/pyproject.toml libs/testing/
COPY libs/cli/pyproject.toml libs/cli/
COPY sandbox/pyproject.toml sandbox/
COPY services/ingestion/pyproject.toml services/ingestion/
COPY services/matcher/pyproject.toml services/matcher/
COPY services/dispatcher/pyproject.toml services/dispatcher/
COPY services/provisioner/pyproject.toml services/provisioner/
COPY services/agent/pyproject.toml services/agent/
COPY services/console/pyproject.toml services/console/
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-dev --package trackai-${SERVICE} --no-install-workspace

# Then the workspace code this service runs on. Installed editable on purpose: the service
# finds its alembic.ini and migrations/ next to its sources, exactly as in a checkout.
COPY libs ./libs
COPY services/${SERVICE} ./services/${SERVICE}
# Only the console serves them; a few hundred KiB in the other images keeps one Dockerfile.
COPY --from=console-assets /vendor ./services/console/src/trackai_console/static/vendor
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-dev --package trackai-${SERVICE} \
 && python -m compileall -q libs services/${SERVICE}/src

FROM ${PYTHON_IMAGE}
ARG SERVICE
# The agent renders landing pages whose pixel is injected by JavaScript (check_pixel_presence)
# in Debian's Chromium, driven by Playwright (its own browser download is not used); the other
# images carry no browser. Chromium writes only to /tmp, an emptyDir in the chart.
RUN if [ "$SERVICE" = "agent" ]; then \
      apt-get update \
      && apt-get install -y --no-install-recommends chromium fonts-liberation \
      && rm -rf /var/lib/apt/lists/*; \
    fi
# Fixed ids: the chart's securityContext runs as 10001:10001 and checks runAsNonRoot.
RUN groupadd --system --gid 10001 trackai \
 && useradd --system --uid 10001 --gid trackai --no-create-home --home-dir /nonexistent \
    --shell /usr/sbin/nologin trackai
# Owned by root and read-only to the service user; bytecode is compiled at build time
# because the chart mounts the root filesystem read-only.
COPY --from=build /app /app
# Production unless the deployment says otherwise: development defaults (token, key ring,
# sandbox URLs) are refused at start-up outside TRACKAI_ENV=local|test.
ENV PATH=/app/.venv/bin:$PATH \
    TRACKAI_ENV=production \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    TRACKAI_SERVICE=${SERVICE} \
    AGENT_CHROMIUM_PATH=/usr/bin/chromium
WORKDIR /app/services/${SERVICE}
USER 10001:10001
CMD ["sh", "-c", "exec python -m trackai_${TRACKAI_SERVICE} serve"]
