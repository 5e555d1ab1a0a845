"""An SMTP server for `make run` that keeps every message it receives as a file.

Campaign sends its e-mail to 127.0.0.1:1025 in development; this accepts it and writes
each message to var/mail/ as an .eml file that any mail client or text editor opens.
Nothing is relayed anywhere.

    python tools/mail_sink.py [--host 127.0.0.1] [--port 1025] [--dir var/mail]
"""

from email import message_from_bytes, policy
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from sinks import FileNames, arguments, wait_until_stopped


class MailDirectory:
    """An aiosmtpd handler that stores each accepted message as <time>-<n>.eml."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._names = FileNames()

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
        _stamp, name = self._names.next()
        path = self.directory / f"{name}.eml"
        path.write_bytes(message.as_bytes())
        return path


def start(host: str, port: int, directory: Path) -> Controller:
    """The SMTP server, listening, storing into `directory` (stop it with .stop())."""
    controller = Controller(MailDirectory(directory), hostname=host, port=port)
    controller.start()
    return controller


def main() -> None:
    given = arguments(__doc__.splitlines()[0], 1025, "var/mail")
    controller = start(given.host, given.port, given.dir)
    wait_until_stopped(f"SMTP sink on {given.host}:{given.port}, mail in {given.dir.resolve()}/")
    controller.stop()


if __name__ == "__main__":
    main()
