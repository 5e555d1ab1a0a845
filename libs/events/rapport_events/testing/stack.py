"""Run the four services as real processes (uvicorn) for end-to-end tests and benchmarks."""

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from rapport_events.testing.broker import free_port

DEV_TOKEN = "rapport-dev-token"
SERVICES = {
    "profile": ("rapport_profile.main:create_app", "PROFILE_"),
    "campaign": ("rapport_campaign.main:create_app", "CAMPAIGN_"),
    "support": ("rapport_support.main:create_app", "SUPPORT_"),
    "partner-share": ("rapport_partner_share.main:create_app", "PARTNER_SHARE_"),
    "sales": ("rapport_sales.main:create_app", "SALES_"),
}


def kafka_env(bootstrap_servers: str, topic: str) -> dict[str, str]:
    """The Kafka environment of a test's stack: a topic of its own (`rapport.<topic>-<random>`,
    3 partitions) with its data key topic, and short sessions, so a consumer group settles
    in seconds."""
    suffix = uuid.uuid4().hex[:8]
    return {
        "KAFKA_BOOTSTRAP_SERVERS": bootstrap_servers,
        "KAFKA_TOPIC": f"rapport.{topic}-{suffix}",
        "KAFKA_KEYS_TOPIC": f"rapport.customer-keys-{topic}-{suffix}",
        "KAFKA_PARTITIONS": "3",
        "KAFKA_SESSION_TIMEOUT_MS": "2000",
        "KAFKA_HEARTBEAT_INTERVAL_MS": "300",
    }


@dataclass
class ServiceProcess:
    name: str
    port: int
    process: subprocess.Popen[bytes]
    log_path: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


@dataclass
class Stack:
    """The services of one test, each on a free port with its own database."""

    workdir: Path
    env: Mapping[str, str]
    databases: Mapping[str, str]
    services: dict[str, ServiceProcess] = field(default_factory=dict)

    def start(self, names: list[str] | None = None) -> "Stack":
        for name in names or list(SERVICES):
            self.services[name] = self._launch(name)
        return self

    def start_replicas(self, count: int, names: list[str] | None = None) -> "Stack":
        """`count` processes of each service on its one database, named `<service>.<n>`."""
        for name in names or list(SERVICES):
            for replica in range(count):
                key = f"{name}.{replica}"
                self.services[key] = self._launch(name, key)
        return self

    def replicas(self, name: str) -> list[str]:
        """The started replicas of service `name`, as named in `services`."""
        return [key for key, service in self.services.items() if service.name == name]

    def kill(self, key: str) -> None:
        """SIGKILL one process (no shutdown of any kind) and reap it."""
        process = self.services[key].process
        process.send_signal(signal.SIGKILL)
        process.wait(10)

    def restart(self, key: str) -> ServiceProcess:
        """Start a stopped process again, on a new port, appending to its log."""
        name = self.services[key].name
        self.services[key] = self._launch(name, key)
        return self.services[key]

    def _launch(self, name: str, key: str | None = None) -> ServiceProcess:
        factory, prefix = SERVICES[name]
        port = free_port()
        log_path = self.workdir / f"{key or name}.log"
        env = {
            **os.environ,
            # The stack runs with the development token, which production refuses.
            "RAPPORT_ENV": "development",
            **self.env,
            f"{prefix}DATABASE_URL": self.databases[name],
            "PYTHONUNBUFFERED": "1",
        }
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "--factory",
                factory,
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--no-access-log",
            ],
            stdout=log_path.open("ab"),
            stderr=subprocess.STDOUT,
            env=env,
            cwd=self.workdir,
        )
        return ServiceProcess(name, port, process, log_path)

    def url(self, name: str) -> str:
        return self.services[name].url

    def wait_ready(self, timeout: float = 60.0, names: list[str] | None = None) -> float:
        """Seconds until every started service (or those named) answered /readyz with 200."""
        started = time.monotonic()
        pending = set(names or self.services)
        answers: dict[str, str] = {}
        with httpx.Client(timeout=2.0) as client:
            while pending:
                for name in list(pending):
                    service = self.services[name]
                    if service.process.poll() is not None:
                        raise RuntimeError(f"{name} exited:\n{service.log()[-4000:]}")
                    try:
                        reply = client.get(f"{service.url}/readyz")
                        answers[name] = reply.text
                        if reply.status_code == 200:
                            pending.discard(name)
                    except httpx.HTTPError as error:
                        answers[name] = repr(error)
                if time.monotonic() - started > timeout:
                    logs = "\n".join(
                        f"{n}: /readyz {answers.get(n)}\n{self.services[n].log()[-2000:]}"
                        for n in pending
                    )
                    raise TimeoutError(f"not ready after {timeout}s: {sorted(pending)}\n{logs}")
                if pending:
                    time.sleep(0.2)
        return time.monotonic() - started

    def stop(self, names: list[str] | None = None) -> None:
        for name in names or list(self.services):
            service = self.services.pop(name, None)
            if service is None:
                continue
            service.process.terminate()
            try:
                service.process.wait(15)
            except subprocess.TimeoutExpired:
                service.process.kill()
                service.process.wait(5)
