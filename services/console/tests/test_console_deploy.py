"""The console as `make run`, docker-compose, the Dockerfile and Kubernetes start it."""

import json
import os
import re
import secrets
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from rapport_console.settings import Settings
from rapport_events.testing.broker import free_port
from rapport_events.testing.procfile import procfile_command, start_process

REPO = Path(__file__).resolve().parents[3]
PORT = 8000
SERVICE_URLS = {
    "profile_url": "http://profile:8001",
    "campaign_url": "http://campaign:8002",
    "support_url": "http://support:8003",
    "partner_share_url": "http://partner-share:8004",
}


@pytest.fixture
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    for key in list(os.environ):
        if key.startswith(("CONSOLE_", "RAPPORT_")) or key == "DATABASE_URL":
            monkeypatch.delenv(key)
    yield monkeypatch


def settings_in(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Settings:
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return Settings()


@pytest.mark.integration  # the console of the Procfile, as a process
class TestMakeRun:
    def test_the_procfile_starts_the_console_on_its_port(self) -> None:
        command = procfile_command(REPO / "Procfile", "console")
        assert command[:3] == ["uvicorn", "--factory", "rapport_console.main:create_app"]
        assert command[command.index("--port") + 1] == str(PORT)

    def test_the_console_of_the_procfile_serves_its_login_page(
        self, tmp_path: Path, clean_environment: pytest.MonkeyPatch
    ) -> None:
        # `make run` starts the Procfile with the virtual environment's tools on PATH.
        clean_environment.setenv("PATH", f"{Path(sys.executable).parent}:{os.environ['PATH']}")
        clean_environment.setenv("RAPPORT_ENV", "development")
        clean_environment.setenv("CONSOLE_DATABASE_URL", f"sqlite:///{tmp_path}/console.db")
        port = free_port()
        process = start_process(REPO / "Procfile", "console", {"--port": str(port)})
        try:
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=2) as client:
                ready = _until_ready(client, process)
                login = client.get("/login")
        finally:
            process.terminate()
            process.wait(10)
        assert ready.json()["checks"] == {
            "database": "ok",
            "assets": "ok",
            "console-log-retention": "ok",
        }
        assert login.status_code == 200 and 'name="password"' in login.text


def _until_ready(client: httpx.Client, process: Any) -> httpx.Response:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert process.poll() is None, "the console exited"
        try:
            reply = client.get("/readyz")
            if reply.status_code == 200:
                return reply
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise AssertionError("the console was not ready within 60 s")


def compose_environment() -> dict[str, str]:
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    env = {key: str(value) for key, value in compose["services"]["console"]["environment"].items()}
    given = {
        "RAPPORT_API_TOKEN": secrets.token_urlsafe(32),
        "CONSOLE_SESSION_SECRET": secrets.token_urlsafe(32),
        "CONSOLE_OPERATORS": json.dumps(
            [{"username": "admin", "role": "admin", "password_hash": "$argon2id$" + "x" * 40}]
        ),
    }
    resolved = {}
    for key, value in env.items():
        value = re.sub(r"\$\{(\w+):\?[^}]*\}", lambda m: given[m.group(1)], value)
        resolved[key] = re.sub(r"\$\{\w+:-([^}]*)\}", r"\1", value)
    return resolved


class TestCompose:
    def test_runs_as_production_on_postgres_and_reaches_the_services_by_name(
        self, clean_environment: pytest.MonkeyPatch
    ) -> None:
        settings = settings_in(compose_environment(), clean_environment)

        assert settings.environment == "production"
        assert settings.database_url.startswith("postgresql://")
        assert settings.database_url.endswith("/console")
        assert {name: getattr(settings, name) for name in SERVICE_URLS} == SERVICE_URLS
        assert [account.username for account in settings.operators] == ["admin"]

    def test_secrets_have_no_default_and_a_healthcheck_on_readyz(self) -> None:
        console = yaml.safe_load((REPO / "docker-compose.yml").read_text())["services"]["console"]
        env = console["environment"]
        for name in ("RAPPORT_API_TOKEN", "CONSOLE_SESSION_SECRET", "CONSOLE_OPERATORS"):
            assert re.fullmatch(r"\$\{\w+:\?.+\}", env[name]), name
        assert f"127.0.0.1:{PORT}/readyz" in " ".join(console["healthcheck"]["test"])
        assert f"{PORT}:{PORT}" in console["ports"]
        assert "console" in (REPO / "deploy/postgres/init-databases.sh").read_text()

    def test_the_image_serves_the_npm_libraries(self) -> None:
        dockerfile = (REPO / "Dockerfile").read_text()
        target = re.search(r"^FROM runtime AS console$(.*?)(?=^FROM |\Z)", dockerfile, re.M | re.S)
        assert target
        command = json.loads(re.search(r"^CMD (.*)$", target.group(1), re.M).group(1))  # type: ignore[union-attr]
        assert command[:3] == ["uvicorn", "--factory", "rapport_console.main:create_app"]
        assert command[command.index("--port") + 1] == str(PORT)
        assert "CONSOLE_ASSETS_DIR=" in target.group(1)
        assert "npm ci" in dockerfile and "package-lock.json" in dockerfile


def kubernetes_environment(fill: bool) -> dict[str, str]:
    documents = [
        doc
        for path in ("console.yaml", "config.yaml", "secret.example.yaml")
        for doc in yaml.safe_load_all((REPO / "deploy/k8s" / path).read_text())
        if doc
    ]
    (deployment,) = [d for d in documents if d["kind"] == "Deployment"]
    (config,) = [d for d in documents if d["kind"] == "ConfigMap"]
    (secret,) = [d for d in documents if d["kind"] == "Secret"]
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    env = {key: str(value) for key, value in config["data"].items()}
    for variable in container["env"]:
        source = variable.get("valueFrom", {})
        if "secretKeyRef" in source:
            value = secret["stringData"][source["secretKeyRef"]["key"]]
            if fill:
                value = re.sub(r"replace-with[-\w]*", lambda _: secrets.token_urlsafe(32), value)
            env[variable["name"]] = value
        elif "value" in variable:
            env[variable["name"]] = str(variable["value"])
    return env


class TestKubernetes:
    def test_starts_with_the_config_and_the_filled_secret_template(
        self, clean_environment: pytest.MonkeyPatch
    ) -> None:
        settings = settings_in(kubernetes_environment(fill=True), clean_environment)

        assert settings.environment == "production"
        assert settings.database_url.endswith("/console")
        assert {name: getattr(settings, name) for name in SERVICE_URLS} == SERVICE_URLS

    def test_refuses_the_template_left_unfilled(
        self, clean_environment: pytest.MonkeyPatch
    ) -> None:
        with pytest.raises(ValueError, match="template placeholder"):
            settings_in(kubernetes_environment(fill=False), clean_environment)

    def test_listed_in_the_kustomization(self) -> None:
        kustomization = yaml.safe_load((REPO / "deploy/k8s/kustomization.yaml").read_text())
        assert "console.yaml" in kustomization["resources"]
