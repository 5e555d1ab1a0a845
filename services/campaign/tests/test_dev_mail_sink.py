"""The SMTP sink of `make run` keeps what campaign sends where a developer can read it."""

import email
import email.policy
import smtplib
import subprocess
import time
from email.message import EmailMessage
from pathlib import Path

import pytest

from rapport_campaign.settings import Settings
from rapport_events.testing.broker import free_port
from rapport_events.testing.procfile import option, procfile_command, start_process

# Opens a database or a server of its own: not a unit test.
pytestmark = pytest.mark.integration

PROCFILE = Path(__file__).resolve().parents[3] / "Procfile"


def wait_for_port(port: int, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        assert process.poll() is None, "the mail sink exited"
        try:
            smtplib.SMTP("127.0.0.1", port, timeout=2).quit()
            return
        except OSError:
            time.sleep(0.1)
    raise AssertionError("the mail sink did not listen")


def stored(directory: Path) -> list[EmailMessage]:
    return [
        email.message_from_bytes(path.read_bytes(), policy=email.policy.default)  # type: ignore[misc]
        for path in sorted(directory.glob("*.eml"))
    ]


class TestDevelopmentMailSink:
    def test_listens_where_campaign_sends_in_development(self) -> None:
        command = procfile_command(PROCFILE, "mail")
        defaults = Settings.model_fields

        assert (defaults["smtp_host"].default, defaults["smtp_port"].default) == (
            option(command, "--host"),
            int(option(command, "--port")),
        )
        assert option(command, "--dir") == "var/mail"

    def test_a_message_sent_to_it_is_stored_as_an_eml_file(self, tmp_path: Path) -> None:
        port = free_port()
        process = start_process(
            PROCFILE, "mail", {"--port": str(port), "--dir": str(tmp_path / "mail")}
        )
        try:
            wait_for_port(port, process)
            message = EmailMessage()
            message["From"] = "news@rapport.example"
            message["To"] = "ann@example.com"
            message["Subject"] = "Spring is here"
            message.set_content("Shop now: http://127.0.0.1:8002/t/abc")
            with smtplib.SMTP("127.0.0.1", port, timeout=5) as client:
                client.send_message(message, to_addrs=["ann@example.com", "audit@example.com"])
        finally:
            process.terminate()
            assert process.wait(timeout=10) == 0

        (received,) = stored(tmp_path / "mail")
        assert received["Subject"] == "Spring is here"
        assert received.get_all("Delivered-To") == ["ann@example.com", "audit@example.com"]
        assert "http://127.0.0.1:8002/t/abc" in received.get_content()
