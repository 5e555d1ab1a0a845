"""An SMTP server for `make run` that keeps every message it receives as a file.

Campaign sends its e-mail to 127.0.0.1:1025 in development; this accepts it and writes
each message to var/mail/ as an .eml file that any mail client or text editor opens.
Nothing is relayed anywhere.

    python tools/mail_sink.py [--host 127.0.0.1] [--port 1025] [--dir var/mail]
"""

import argparse
import itertools
import signal
import threading
from datetime import UTC, datetime
from email import message_from_bytes, policy
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller


class MailDirectory:
    """An aiosmtpd handler that stores each accepted message as <time>-<n>.eml."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._numbers = itertools.count(1)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        path = self.store(envelope.content, list(envelope.rcpt_tos))
        print(f"mail for {', '.join(envelope.rcpt_tos)} -> {path}", flush=True)
        return "250 Message accepted for delivery"

    def store(self, content: bytes, recipients: list[str]) -> Path:
        """Write the message, with its envelope recipients as Delivered-To (Bcc shows there)."""
        message = message_from_bytes(content, policy=policy.SMTP)
        for recipient in recipients:
            message["Delivered-To"] = recipient
        self.directory.mkdir(parents=True, exist_ok=True)
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%f")
        path = self.directory / f"{stamp}-{next(self._numbers)}.eml"
        path.write_bytes(message.as_bytes())
        return path


def start(host: str, port: int, directory: Path) -> Controller:
    """The SMTP server, listening, storing into `directory` (stop it with .stop())."""
    controller = Controller(MailDirectory(directory), hostname=host, port=port)
    controller.start()
    return controller


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=1025)
    parser.add_argument("--dir", type=Path, default=Path("var/mail"))
    arguments = parser.parse_args()

    controller = start(arguments.host, arguments.port, arguments.dir)
    print(
        f"SMTP sink on {arguments.host}:{arguments.port}, mail in {arguments.dir.resolve()}/",
        flush=True,
    )
    stopped = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    signal.signal(signal.SIGINT, lambda *_: stopped.set())
    stopped.wait()
    controller.stop()


if __name__ == "__main__":
    main()
