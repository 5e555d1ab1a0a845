# One image per service, built from the workspace with uv from uv.lock:
#   docker build --target profile -t rapport/profile .
# (campaign, support, partner-share likewise). docker-compose.yml builds all four.
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
RUN uv sync --frozen --no-dev --all-packages --no-install-workspace
COPY libs libs
COPY services services
RUN uv sync --frozen --no-dev --all-packages --no-editable

FROM ${PYTHON_IMAGE} AS runtime
RUN useradd --system --uid 10001 --home-dir /app rapport
COPY --from=build /app/.venv /app/.venv
ENV PATH=/app/.venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /app
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
