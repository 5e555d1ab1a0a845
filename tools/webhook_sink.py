"""An HTTP server for `make run` that keeps every webhook it receives as a file.

In development campaign posts SMS, push and social messages, support posts replies to
social mentions, and partner-share posts partner notices to webhooks; under `make run`
they point here (127.0.0.1:1080). Each POST is written to var/webhooks/<path>/ as a JSON
file holding its path, headers and body, and answered 200. Nothing is relayed anywhere.

    python tools/webhook_sink.py [--host 127.0.0.1] [--port 1080] [--dir var/webhooks]
"""

import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from sinks import FileNames, arguments, wait_until_stopped

MAX_BODY_BYTES = 1_048_576


class WebhookDirectory:
    """Stores each request as <dir>/<path as a folder>/<time>-<n>.json."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._names = FileNames()

    def store(self, path: str, headers: dict[str, str], body: bytes) -> Path:
        folder = self.directory / (re.sub(r"[^A-Za-z0-9_.-]+", "_", path.strip("/")) or "root")
        folder.mkdir(parents=True, exist_ok=True)
        try:
            parsed: Any = json.loads(body)
        except ValueError:
            parsed = body.decode("utf-8", "replace")
        stamp, name = self._names.next()
        target = folder / f"{name}.json"
        record = {"path": path, "received_at": stamp, "headers": headers, "body": parsed}
        target.write_text(json.dumps(record, indent=2, ensure_ascii=False))
        return target


def handler_for(store: WebhookDirectory) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            length = int(self.headers.get("Content-Length") or 0)
            if not 0 <= length <= MAX_BODY_BYTES:
                self._answer(413, {"error": "body too large"})
                return
            body = self.rfile.read(length)
            path = store.store(self.path, dict(self.headers.items()), body)
            print(f"webhook {self.path} -> {path}", flush=True)
            self._answer(200, {"received": True})

        do_PUT = do_POST  # noqa: N815

        def _answer(self, status: int, payload: dict[str, Any]) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            pass  # one line per webhook is printed by do_POST

    return Handler


def start(host: str, port: int, directory: Path) -> ThreadingHTTPServer:
    """The server, listening and serving in a thread (stop it with .shutdown())."""
    server = ThreadingHTTPServer((host, port), handler_for(WebhookDirectory(directory)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def main() -> None:
    given = arguments(__doc__.splitlines()[0], 1080, "var/webhooks")
    server = start(given.host, given.port, given.dir)
    wait_until_stopped(
        f"webhook sink on http://{given.host}:{given.port}/, requests in {given.dir.resolve()}/"
    )
    server.shutdown()


if __name__ == "__main__":
    main()
