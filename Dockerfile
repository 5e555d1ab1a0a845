# One image per service, built from the workspace with uv from uv.lock:
#   docker build --target profile -t rapport/profile .
# (campaign, support, partner-share, sales likewise). docker-compose.yml builds them all.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ARG UV_VERSION=0.13.9
RUN pip install --no-cache-dir "uv==${UV_VERSION}"
ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    UV_PROJECT_ENVIRONMENT=/app/.venv
WORKDIR /src
# Dependencies first, so a code change does not reinstall them.
COPY pyproject.toml uv.lock ./
COPY libs/events/pyproject.toml libs/events/pyproject.toml
COPY services/profile/pyproject.toml services/profile/pyproject.toml
COPY services/campaign/pyproject.toml services/campaign/pyproject.toml
COPY services/support/pyproject.toml services/support/pyproject.toml
COPY services/partner-share/pyproject.toml services/partner-share/pyproject.toml
COPY services/console/pyproject.toml services/console/pyproject.toml
COPY services/sales/pyproject.toml services/sales/pyproject.toml
RUN uv sync --frozen --no-dev --all-packages --no-install-workspace
COPY libs libs
COPY services services
RUN uv sync --frozen --no-dev --all-packages --no-editable

FROM ${PYTHON_IMAGE} AS runtime
RUN useradd --system --uid 10001 --home-dir /app rapport \
    && install -d -o 10001 -g 10001 /app/var \
    && install -d -o 10001 -g 10001 /app/var/sales-documents
COPY --from=build /app/.venv /app/.venv
ENV PATH=/app/.venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /app
# The SQLite default (sqlite:///var/<service>.db) lives in /app/var, the one directory
# the runtime user may write; mount a volume there to keep it. With several replicas,
# use PostgreSQL (DATABASE_URL) instead.
VOLUME /app/var
USER 10001
# Migrations run in each service's lifespan, so a container is ready only once its
# schema is current (GET /readyz).

FROM runtime AS profile
EXPOSE 8001
CMD ["uvicorn", "--factory", "rapport_profile.main:create_app", "--host", "0.0.0.0", "--port", "8001", "--no-access-log"]

FROM runtime AS campaign
EXPOSE 8002
CMD ["uvicorn", "--factory", "rapport_campaign.main:create_app", "--host", "0.0.0.0", "--port", "8002", "--no-access-log"]

FROM runtime AS support
EXPOSE 8003
CMD ["uvicorn", "--factory", "rapport_support.main:create_app", "--host", "0.0.0.0", "--port", "8003", "--no-access-log"]

FROM runtime AS partner-share
EXPOSE 8004
CMD ["uvicorn", "--factory", "rapport_partner_share.main:create_app", "--host", "0.0.0.0", "--port", "8004", "--no-access-log"]

# The console's browser libraries (htmx, Chart.js), from its npm lockfile.
FROM node:20-bookworm-slim AS console-assets
WORKDIR /assets
COPY services/console/package.json services/console/package-lock.json ./
RUN npm ci --no-audit --no-fund

FROM runtime AS console
COPY --from=console-assets /assets/node_modules /app/console-assets/node_modules
ENV CONSOLE_ASSETS_DIR=/app/console-assets/node_modules
EXPOSE 8000
CMD ["uvicorn", "--factory", "rapport_console.main:create_app", "--host", "0.0.0.0", "--port", "8000", "--no-access-log"]

FROM runtime AS sales
EXPOSE 8005
CMD ["uvicorn", "--factory", "rapport_sales.main:create_app", "--host", "0.0.0.0", "--port", "8005", "--no-access-log"]
