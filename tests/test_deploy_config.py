"""docker-compose.yml, the Dockerfile and deploy/ agree: probes, ports, env, metric names."""

import importlib
import json
import os
import re
import secrets
import shutil
import subprocess
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

from rapport_events import observability

REPO = Path(__file__).resolve().parent.parent
DEPLOY = REPO / "deploy"
DEVELOPMENT_TOKEN = "rapport-dev-token"
# What an operator sets before `docker compose up` (`make compose-env` writes them to .env).
COMPOSE_SECRETS = {
    "RAPPORT_API_TOKEN": secrets.token_urlsafe(32),
    "CAMPAIGN_SIGNING_SECRET": secrets.token_urlsafe(32),
    "CAMPAIGN_WEBHOOK_SECRET": secrets.token_urlsafe(32),
    "PARTNER_SHARE_LEDGER_KEY": secrets.token_urlsafe(32),
    "PROFILE_WRITE_KEYS": json.dumps([secrets.token_urlsafe(32)]),
    "CONSOLE_SESSION_SECRET": secrets.token_urlsafe(32),
    "CONSOLE_OPERATORS": "[]",
    "KAFKA_KEY_ENCRYPTION_KEYS": json.dumps([f"k1:{secrets.token_urlsafe(32)}"]),
}
# service -> (env prefix, port, package), as DESIGN.md assigns them
SERVICES = {
    "profile": ("PROFILE_", 8001, "rapport_profile"),
    "campaign": ("CAMPAIGN_", 8002, "rapport_campaign"),
    "support": ("SUPPORT_", 8003, "rapport_support"),
    "partner-share": ("PARTNER_SHARE_", 8004, "rapport_partner_share"),
    "sales": ("SALES_", 8005, "rapport_sales"),
}


@cache
def compose() -> dict[str, Any]:
    """The compose file as docker-compose resolves it, or as YAML when the tool is absent."""
    binary = shutil.which("docker-compose")
    if not binary and os.environ.get("RAPPORT_REQUIRE_COMPOSE") in ("1", "true", "yes"):
        pytest.fail("docker-compose is not installed (RAPPORT_REQUIRE_COMPOSE is set)")
    if binary:
        result = subprocess.run(
            [binary, "-f", str(REPO / "docker-compose.yml"), "config"],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=REPO,
            env={**os.environ, **COMPOSE_SECRETS},
        )
        assert result.returncode == 0, result.stderr
        return yaml.safe_load(result.stdout)  # type: ignore[no-any-return]
    return yaml.safe_load((REPO / "docker-compose.yml").read_text())  # type: ignore[no-any-return]


def environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {key: str(value) for key, value in env.items()}


def published_ports(service: dict[str, Any]) -> set[int]:
    ports = set()
    for port in service.get("ports", []):
        if isinstance(port, dict):
            ports.add(int(port["published"]))
        else:
            ports.add(int(str(port).split(":")[-2].split("/")[0]))
    return ports


def gateway_servers() -> dict[int, str]:
    """The compose gateway's listening port -> the service URL it proxies to."""
    conf = (DEPLOY / "compose/gateway.conf").read_text()
    servers = {}
    for block in re.findall(r"server \{(.*?)\n\}", conf, re.S):
        port = int(re.search(r"listen (\d+);", block).group(1))  # type: ignore[union-attr]
        upstream = re.search(r"set \$(\w+) (\S+);", block)
        assert upstream and f"proxy_pass ${upstream.group(1)};" in block, block
        servers[port] = upstream.group(2)
    return servers


def default_of(value: str) -> str:
    """`${VAR:-default}` as docker-compose would resolve it with VAR unset, and a required
    `${VAR:?message}` as it would with the operator's secrets set."""
    value = re.sub(r"\$\{([A-Z_]+):\?[^}]*\}", lambda m: COMPOSE_SECRETS[m.group(1)], value)
    return re.sub(r"\$\{[A-Z_]+:-([^}]*)\}", r"\1", value)


class TestCompose:
    def test_runs_the_stack_on_kafka_postgres_and_jaeger(self) -> None:
        services = compose()["services"]
        assert set(services) >= {"kafka", "postgres", "jaeger", *SERVICES}
        kafka = environment(services["kafka"])
        assert services["kafka"]["image"].startswith("apache/kafka:")
        assert "controller" in kafka["KAFKA_PROCESS_ROLES"]  # KRaft, no ZooKeeper
        assert "zookeeper" not in services

    @pytest.mark.parametrize("name", list(SERVICES))
    def test_each_service_is_configured_for_production(self, name: str) -> None:
        prefix, port, _ = SERVICES[name]
        service = compose()["services"][name]
        env = environment(service)
        assert env["KAFKA_ENABLE_IDEMPOTENCE"] == "true"
        assert env["KAFKA_BOOTSTRAP_SERVERS"] == "kafka:9092"
        assert env[f"{prefix}ENVIRONMENT"] == "production"
        assert default_of(env[f"{prefix}DATABASE_URL"]).startswith("postgresql://")
        assert default_of(env[f"{prefix}DATABASE_URL"]).endswith("/" + name.replace("-", "_")), (
            "one database per service"
        )
        token = default_of(env["RAPPORT_API_TOKEN"])
        assert token and token != DEVELOPMENT_TOKEN
        assert env["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://jaeger:4318"
        assert service["build"]["target"] == name
        assert str(port) in [str(exposed) for exposed in service["expose"]]
        depends = service["depends_on"]
        assert depends["kafka"]["condition"] == depends["postgres"]["condition"]
        assert depends["kafka"]["condition"] == "service_healthy"

    @pytest.mark.parametrize("name", list(SERVICES))
    def test_each_service_is_healthy_only_when_ready(self, name: str) -> None:
        port = SERVICES[name][1]
        check = " ".join(compose()["services"][name]["healthcheck"]["test"])
        assert f"127.0.0.1:{port}/readyz" in check

    @pytest.mark.parametrize("name", list(SERVICES))
    def test_each_service_scales_behind_the_gateway(self, name: str) -> None:
        port = SERVICES[name][1]
        services = compose()["services"]
        service = services[name]
        # `--scale name=2` starts a second container: a fixed host port or container name
        # would stop it from starting.
        assert not service.get("ports"), "a published host port cannot be shared by replicas"
        assert "container_name" not in service
        gateway = services["gateway"]
        assert port in published_ports(gateway)
        assert name in gateway["depends_on"]
        (mount,) = [str(v) for v in gateway["volumes"] if "gateway.conf" in str(v)]
        servers = gateway_servers()
        assert servers[port] == f"http://{name}:{port}", "the gateway forwards to every replica"
        assert "/etc/nginx/conf.d/" in mount

    def test_gateway_looks_replicas_up_again(self) -> None:
        conf = (DEPLOY / "compose/gateway.conf").read_text()
        # Docker's DNS, asked again every few seconds: replicas added later get requests.
        assert re.search(r"^resolver 127\.0\.0\.11 valid=\d+s", conf, re.M)
        # A name in a variable makes nginx resolve it per request, not once at start-up.
        assert set(gateway_servers().values()) == {
            f"http://{name}:{port}" for name, (_, port, _) in SERVICES.items()
        }
        assert "client_max_body_size 0;" in conf, "the services bound bodies with a JSON 413"
        assert "non_idempotent" not in conf, "a POST must never be sent to two replicas"

    def test_nginx_takes_the_gateway_configuration(self, tmp_path: Path) -> None:
        nginx = shutil.which("nginx")
        if nginx is None:
            pytest.skip("nginx is not installed (Debian's nginx package has it)")
        # The image includes conf.d/*.conf inside its http block: do the same.
        (tmp_path / "nginx.conf").write_text(
            f"pid {tmp_path}/nginx.pid;\nerror_log {tmp_path}/error.log;\nevents {{}}\n"
            f"http {{ include {DEPLOY / 'compose/gateway.conf'}; }}\n"
        )
        result = subprocess.run(
            [nginx, "-t", "-c", str(tmp_path / "nginx.conf")],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert result.returncode == 0, result.stderr

    def test_every_dependency_has_a_healthcheck(self) -> None:
        services = compose()["services"]
        for name in ("kafka", "postgres"):
            assert services[name]["healthcheck"]["test"], name

    def test_jaeger_takes_otlp_http_and_serves_its_ui(self) -> None:
        jaeger = compose()["services"]["jaeger"]
        assert "all-in-one" in jaeger["image"]
        assert {4318, 16686} <= published_ports(jaeger)

    def test_postgres_creates_one_database_per_service(self) -> None:
        postgres = compose()["services"]["postgres"]
        volumes = " ".join(str(volume) for volume in postgres["volumes"])
        assert "docker-entrypoint-initdb.d" in volumes
        script = (DEPLOY / "postgres/init-databases.sh").read_text()
        for name in SERVICES:
            assert name.replace("-", "_") in script

    def test_dockerfile_builds_each_service_from_the_lock(self) -> None:
        dockerfile = (REPO / "Dockerfile").read_text()
        assert "uv sync --frozen" in dockerfile and "uv.lock" in dockerfile
        for name, (_, port, package) in SERVICES.items():
            target = re.search(
                rf"^FROM \S+ AS {re.escape(name)}$(.*?)(?=^FROM |\Z)", dockerfile, re.M | re.S
            )
            assert target, f"no {name} target"
            command = json.loads(re.search(r"^CMD (.*)$", target.group(1), re.M).group(1))  # type: ignore[union-attr]
            assert command[:3] == ["uvicorn", "--factory", f"{package}.main:create_app"]
            assert command[command.index("--port") + 1] == str(port)


def deploy_documents() -> list[tuple[Path, dict[str, Any]]]:
    """Every YAML document and JSON file under deploy/ (each must parse)."""
    documents = []
    for path in sorted(DEPLOY.rglob("*")):
        if path.suffix in (".yaml", ".yml"):
            documents += [(path, doc) for doc in yaml.safe_load_all(path.read_text()) if doc]
        elif path.suffix == ".json":
            documents.append((path, json.loads(path.read_text())))
    return documents


def kubernetes(kind: str) -> list[dict[str, Any]]:
    return [doc for _, doc in deploy_documents() if doc.get("kind") == kind and "apiVersion" in doc]


def deployment(name: str) -> dict[str, Any]:
    return next(d for d in kubernetes("Deployment") if d["metadata"]["name"] == name)


class TestKubernetes:
    def test_every_file_parses(self) -> None:
        paths = {path.relative_to(DEPLOY).as_posix() for path, _ in deploy_documents()}
        assert {"k8s/profile.yaml", "k8s/otel-collector/config.yaml"} <= paths
        assert any(path.endswith(".json") for path in paths)

    def test_a_deployment_and_a_service_per_rapport_service(self) -> None:
        deployments = {d["metadata"]["name"] for d in kubernetes("Deployment")}
        services = {s["metadata"]["name"] for s in kubernetes("Service")}
        assert set(SERVICES) <= deployments and set(SERVICES) <= services

    @pytest.mark.parametrize("name", list(SERVICES))
    def test_probes_point_at_health_and_readiness(self, name: str) -> None:
        (container,) = deployment(name)["spec"]["template"]["spec"]["containers"]
        assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
        assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
        assert container["ports"][0]["containerPort"] == SERVICES[name][1]

    def test_every_deployment_has_probes_and_resources(self) -> None:
        for item in kubernetes("Deployment"):
            for container in item["spec"]["template"]["spec"]["containers"]:
                where = f"{item['metadata']['name']}/{container['name']}"
                for probe in ("livenessProbe", "readinessProbe"):
                    assert container[probe]["httpGet"]["path"].startswith("/"), where
                    assert container[probe]["httpGet"]["port"], where
                for bound in ("requests", "limits"):
                    assert {"cpu", "memory"} <= set(container["resources"][bound]), where

    def test_service_ports_reach_container_ports(self) -> None:
        for service in kubernetes("Service"):
            selector = service["spec"]["selector"]
            (target,) = [
                d
                for d in kubernetes("Deployment")
                if selector.items() <= d["spec"]["template"]["metadata"]["labels"].items()
            ]
            ports = [
                port
                for container in target["spec"]["template"]["spec"]["containers"]
                for port in container.get("ports", [])
            ]
            names = {port.get("name") for port in ports}
            numbers = {port["containerPort"] for port in ports}
            for port in service["spec"]["ports"]:
                wanted = port.get("targetPort", port["port"])
                assert wanted in names or wanted in numbers, (service["metadata"]["name"], port)
                if service["metadata"]["name"] in SERVICES:
                    assert port["port"] == SERVICES[service["metadata"]["name"]][1]

    def test_configmap_and_secret_hold_what_deployments_read(self) -> None:
        (config,) = [
            c for c in kubernetes("ConfigMap") if c["metadata"]["name"] == "rapport-config"
        ]
        data = config["data"]
        assert data["KAFKA_ENABLE_IDEMPOTENCE"] == "true"
        assert {"KAFKA_BOOTSTRAP_SERVERS", "OTEL_EXPORTER_OTLP_ENDPOINT"} <= set(data)
        assert "otlp" in data["OTEL_METRICS_EXPORTER"] and "otlp" in data["OTEL_TRACES_EXPORTER"]
        (secret,) = kubernetes("Secret")
        keys = set(secret["stringData"])
        for name in SERVICES:
            (container,) = deployment(name)["spec"]["template"]["spec"]["containers"]
            assert {"configMapRef": {"name": "rapport-config"}} in container["envFrom"]
            for variable in container["env"]:
                ref = variable.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    assert ref["name"] == secret["metadata"]["name"]
                    assert ref["key"] in keys
            env = {variable["name"]: variable.get("value") for variable in container["env"]}
            assert env[f"{SERVICES[name][0]}ENVIRONMENT"] == "production"
            assert f"{SERVICES[name][0]}DATABASE_URL" in env

    def test_kustomization_lists_existing_files(self) -> None:
        kustomization = yaml.safe_load((DEPLOY / "k8s/kustomization.yaml").read_text())
        for resource in kustomization["resources"]:
            assert (DEPLOY / "k8s" / resource).is_file(), resource
        for generator in kustomization["configMapGenerator"]:
            for entry in generator["files"]:
                assert (DEPLOY / "k8s" / entry.split("=")[-1]).is_file(), entry


# Everything a service's Settings may read; cleared so only the deployment's values count.
SETTINGS_VARIABLES = re.compile(r"^(?:PROFILE_|CAMPAIGN_|SUPPORT_|PARTNER_SHARE_|RAPPORT_|KAFKA_)")


def settings_from(package: str, env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Any:
    """The service's Settings as it would build them at start-up in this environment."""
    for key in list(os.environ):
        if SETTINGS_VARIABLES.match(key) or key == "DATABASE_URL":
            monkeypatch.delenv(key)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return importlib.import_module(f"{package}.settings").Settings()


def filled_in(template_value: str) -> str:
    """A value of the Secret template with each `replace-with-…` placeholder generated,
    as the template's own comment tells the operator to do."""
    return re.sub(r"replace-with[-\w]*", lambda _: secrets.token_urlsafe(32), template_value)


def kubernetes_environment(name: str, *, filled: bool = True) -> dict[str, str]:
    """The ConfigMap, the Secret template (filled in) and the Deployment's own env, as the
    pod sees them."""
    (config,) = [c for c in kubernetes("ConfigMap") if c["metadata"]["name"] == "rapport-config"]
    (secret,) = kubernetes("Secret")
    fill = filled_in if filled else str
    (container,) = deployment(name)["spec"]["template"]["spec"]["containers"]
    env = {key: str(value) for key, value in config["data"].items()}
    for variable in container["env"]:
        source = variable.get("valueFrom", {})
        if "secretKeyRef" in source:
            env[variable["name"]] = fill(secret["stringData"][source["secretKeyRef"]["key"]])
        elif "fieldRef" in source:
            env[variable["name"]] = f"{name}-0"
        else:
            env[variable["name"]] = str(variable["value"])
    return env


STARTING = list(SERVICES)


class TestServicesStart:
    @pytest.mark.parametrize("name", STARTING)
    def test_with_the_compose_environment(self, name: str, monkeypatch: pytest.MonkeyPatch) -> None:
        env = {
            key: default_of(value)
            for key, value in environment(compose()["services"][name]).items()
        }

        settings = settings_from(SERVICES[name][2], env, monkeypatch)

        assert settings.environment == "production"
        assert settings.database_url.startswith("postgresql://")

    @pytest.mark.parametrize("name", STARTING)
    def test_with_the_kubernetes_config_and_secret_template(
        self, name: str, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        settings = settings_from(SERVICES[name][2], kubernetes_environment(name), monkeypatch)

        assert settings.environment == "production"
        assert settings.database_url.startswith("postgresql://")

    @pytest.mark.parametrize("name", STARTING)
    def test_not_with_the_secret_template_left_unfilled(
        self, name: str, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        env = kubernetes_environment(name, filled=False)

        with pytest.raises(ValueError, match="RAPPORT_API_TOKEN[^;]* is a template placeholder"):
            settings_from(SERVICES[name][2], env, monkeypatch)

    @pytest.mark.parametrize("name", STARTING)
    def test_not_with_compose_until_its_secrets_are_set(
        self, name: str, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        raw = yaml.safe_load((REPO / "docker-compose.yml").read_text())["services"][name]
        env = environment(raw)
        required = {key for key, value in env.items() if re.fullmatch(r"\$\{\w+:\?.+\}", value)}
        secret_names = {key for key in env if re.search(r"TOKEN|SECRET|KEYS", key)}

        assert secret_names and secret_names <= required, "every secret must be set, no default"
        # A value set but weak is refused too, naming it.
        weak = {key: default_of(value) for key, value in env.items()} | {"RAPPORT_API_TOKEN": ""}
        with pytest.raises(ValueError, match="RAPPORT_API_TOKEN[^;]* is empty"):
            settings_from(SERVICES[name][2], weak, monkeypatch)

    def test_compose_sends_campaign_mail_to_the_sink_and_unsubscribes_to_profile(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        services = compose()["services"]
        env = {key: default_of(value) for key, value in environment(services["campaign"]).items()}

        settings = settings_from("rapport_campaign", env, monkeypatch)

        assert "mailpit" in services[settings.smtp_host]["image"]
        assert settings.smtp_port == 1025
        assert services["campaign"]["depends_on"][settings.smtp_host]
        assert 8025 in published_ports(services[settings.smtp_host])
        assert settings.profile_url == f"http://profile:{SERVICES['profile'][1]}"
        assert settings.public_url == "http://localhost:8002"

    def test_kubernetes_campaign_reaches_profile_through_its_service(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        settings = settings_from(
            "rapport_campaign", kubernetes_environment("campaign"), monkeypatch
        )
        services = {s["metadata"]["name"]: s for s in kubernetes("Service")}
        port = services["profile"]["spec"]["ports"][0]["port"]

        assert settings.profile_url == f"http://profile:{port}"
        assert settings.public_url.startswith("https://")


LOOPBACK = re.compile(
    r"^(?:\w+://)?(?:[^@/]*@)?(?:127\.[\d.]+|localhost|\[::1\]|0\.0\.0\.0)(?::|/|$)"
)
# Read by a person's browser, not by another service: on compose that browser is on the
# host, where the gateway publishes campaign's port.
BROWSER_FACING = {("compose", "campaign", "public_url")}


def address_fields(settings: Any, prefix: str = "") -> dict[str, Any]:
    """Every setting that names a place to connect to: URLs, hosts, servers (nested too),
    and any other whose default is a loopback address."""
    found: dict[str, Any] = {}
    for name, field in type(settings).model_fields.items():
        value = getattr(settings, name)
        if hasattr(type(value), "model_fields") and not isinstance(value, str):
            found |= address_fields(value, f"{prefix}{name}.")
            continue
        named = re.search(r"(?:_url|_host|_servers)$", name) and name != "database_url"
        loopback_default = isinstance(field.default, str) and LOOPBACK.match(field.default)
        if named or loopback_default:
            found[prefix + name] = value
    return found


def reachable_names(where: str) -> dict[str, set[int]]:
    """Host names the deployment resolves, and the ports behind each."""
    if where == "compose":
        services = compose()["services"]
        return {
            name: {int(str(port)) for port in service.get("expose", [])}
            | {
                int(port["target"]) if isinstance(port, dict) else int(str(port).split(":")[-1])
                for port in service.get("ports", [])
            }
            for name, service in services.items()
        }
    return {
        service["metadata"]["name"]: {port["port"] for port in service["spec"]["ports"]}
        for service in kubernetes("Service")
    }


def deployed_settings(where: str, name: str, monkeypatch: pytest.MonkeyPatch) -> Any:
    if where == "compose":
        env = {
            key: default_of(value)
            for key, value in environment(compose()["services"][name]).items()
        }
    else:
        env = kubernetes_environment(name)
    return settings_from(SERVICES[name][2], env, monkeypatch)


class TestAddresses:
    def test_every_service_has_cross_service_settings_to_check(self) -> None:
        for name, (_, _, package) in SERVICES.items():
            settings = importlib.import_module(f"{package}.settings").Settings()
            fields = address_fields(settings)
            assert "kafka.bootstrap_servers" in fields, name
        profile = importlib.import_module("rapport_profile.settings").Settings()
        assert {"campaign_url", "support_url", "partner_share_url"} <= set(address_fields(profile))
        share = importlib.import_module("rapport_partner_share.settings").Settings()
        assert "profile_url" in address_fields(share)

    @pytest.mark.parametrize("where", ["compose", "kubernetes"])
    @pytest.mark.parametrize("name", list(SERVICES))
    def test_no_address_is_left_at_a_loopback_default(
        self, where: str, name: str, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        settings = deployed_settings(where, name, monkeypatch)

        loopback = {
            field: value
            for field, value in address_fields(settings).items()
            if isinstance(value, str)
            and LOOPBACK.match(value)
            and (where, name, field) not in BROWSER_FACING
        }

        assert not loopback, f"{where}: {name} would connect to itself: {loopback}"

    @pytest.mark.parametrize("where", ["compose", "kubernetes"])
    @pytest.mark.parametrize("name", list(SERVICES))
    def test_service_urls_name_a_service_of_the_deployment(
        self, where: str, name: str, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        settings = deployed_settings(where, name, monkeypatch)
        names = reachable_names(where)

        for field, value in address_fields(settings).items():
            match = re.fullmatch(r"http://([\w-]+):(\d+)/?", str(value))
            if match is None or (where, name, field) in BROWSER_FACING:
                continue  # an address outside the deployment (SMTP relay, webhooks, public)
            host, port = match.group(1), int(match.group(2))
            assert host in names, f"{where}: {name}.{field} = {value}: no such service"
            assert port in names[host], (
                f"{where}: {name}.{field} = {value}: {host} has {names[host]}"
            )
            if host in SERVICES:
                assert port == SERVICES[host][1]

    def test_the_loopback_pattern(self) -> None:
        for value in ("http://127.0.0.1:8001", "localhost", "127.0.0.1:9092", "http://[::1]/"):
            assert LOOPBACK.match(value), value
        for value in (
            "http://profile:8001",
            "kafka:9092",
            "smtp.example.com",
            "http://localhost.io",
        ):
            assert not LOOPBACK.match(value), value


class TestScaling:
    @pytest.mark.parametrize("name", list(SERVICES))
    def test_two_replicas_that_roll_without_dropping_below_two(self, name: str) -> None:
        spec = deployment(name)["spec"]
        assert spec["replicas"] >= 2
        rolling = spec["strategy"]["rollingUpdate"]
        assert rolling["maxUnavailable"] == 0 and rolling["maxSurge"] >= 1

    @pytest.mark.parametrize("name", list(SERVICES))
    def test_a_disruption_budget_keeps_one_pod(self, name: str) -> None:
        labels = deployment(name)["spec"]["template"]["metadata"]["labels"]
        (budget,) = [
            b
            for b in kubernetes("PodDisruptionBudget")
            if b["spec"]["selector"]["matchLabels"].items() <= labels.items()
        ]
        assert budget["apiVersion"] == "policy/v1"
        assert budget["spec"]["minAvailable"] == 1
        assert budget["metadata"]["namespace"] == deployment(name)["metadata"]["namespace"]

    @pytest.mark.parametrize("name", list(SERVICES))
    def test_ready_only_when_readyz_says_so(self, name: str) -> None:
        (container,) = deployment(name)["spec"]["template"]["spec"]["containers"]
        assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"

    @pytest.mark.parametrize("name", list(SERVICES))
    def test_the_image_can_write_the_sqlite_default(self, name: str) -> None:
        dockerfile = (REPO / "Dockerfile").read_text()
        runtime = re.search(r"^FROM \S+ AS runtime$(.*?)(?=^FROM |\Z)", dockerfile, re.M | re.S)
        assert runtime
        stage = runtime.group(1).replace("\\\n", " ")
        workdir = re.search(r"^WORKDIR (\S+)$", stage, re.M).group(1)  # type: ignore[union-attr]
        user = re.search(r"^USER (\d+)$", stage, re.M).group(1)  # type: ignore[union-attr]
        owned = set(re.findall(rf"install -d -o {user} -g {user} (\S+)", stage))
        default = (
            importlib.import_module(f"{SERVICES[name][2]}.settings")
            .Settings.model_fields["database_url"]
            .default
        )
        assert default.startswith("sqlite:///") and not default.startswith("sqlite:////")
        directory = (Path(workdir) / default.removeprefix("sqlite:///")).parent
        assert directory.as_posix() in owned, f"{directory} is not writable by user {user}"


class TestCollector:
    def test_otlp_in_batched_out_to_jaeger_and_prometheus(self) -> None:
        config = yaml.safe_load((DEPLOY / "k8s/otel-collector/config.yaml").read_text())
        pipelines = config["service"]["pipelines"]
        assert pipelines["traces"]["receivers"] == ["otlp"]
        assert "batch" in pipelines["traces"]["processors"]
        assert "batch" in pipelines["metrics"]["processors"]
        (traces_out,) = pipelines["traces"]["exporters"]
        assert (
            traces_out.startswith("otlp")
            and "jaeger" in config["exporters"][traces_out]["endpoint"]
        )
        assert pipelines["metrics"]["exporters"] == ["prometheus"]
        assert config["exporters"]["prometheus"]["resource_to_telemetry_conversion"]["enabled"]
        assert set(config["receivers"]["otlp"]["protocols"]) == {"grpc", "http"}


PROMQL_WORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "and", "or"}
PROMQL_WORDS |= {"unless", "bool", "offset", "inf", "nan"}


def metric_names(expression: str) -> set[str]:
    """The metric names a PromQL expression (or a label_values() query) reads."""
    expression = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expression)
    expression = re.sub(r"\{[^}]*\}|\[[^\]]*\]|\$\w+", " ", expression)
    expression = re.sub(r"\b(?:by|without|on|ignoring)\s*\([^)]*\)", " ", expression)
    names = set()
    for match in re.finditer(r"(?<![\w.])[A-Za-z_:][\w:]*", expression):
        rest = expression[match.end() :].lstrip()
        if rest.startswith("(") or match.group() in PROMQL_WORDS:
            continue  # a function, or an operator
        if expression[: match.start()].rstrip().endswith(","):
            continue  # label_values(metric, label): the label
        names.add(match.group())
    return names


def dashboard_expressions() -> list[str]:
    dashboard = json.loads((DEPLOY / "grafana/rapport-dashboard.json").read_text())
    expressions = [
        target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", [])
    ]
    for variable in dashboard["templating"]["list"]:
        query = variable.get("query")
        if isinstance(query, dict):
            expressions.append(query["query"])
    return expressions


class TestDashboard:
    def test_reads_only_metrics_the_services_export(self) -> None:
        used = set().union(*(metric_names(expr) for expr in dashboard_expressions()))
        assert used, "no metric found in the dashboard"
        assert used <= observability.prometheus_series(), used - observability.prometheus_series()

    def test_shows_every_metric_the_services_export(self) -> None:
        used = set().union(*(metric_names(expr) for expr in dashboard_expressions()))
        for spec in observability.METRICS:
            assert used & set(spec.prometheus_series), f"{spec.name} is not on the dashboard"

    def test_the_name_extractor_skips_functions_labels_and_ranges(self) -> None:
        expression = (
            'histogram_quantile(0.95, sum by (le, http_route) (rate(a_bucket{x="y"}[5m])))'
            " / on (job) b_total"
        )
        assert metric_names(expression) == {"a_bucket", "b_total"}
        assert metric_names("label_values(c_count, service_name)") == {"c_count"}
