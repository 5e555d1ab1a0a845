"""What the development sinks of `make run` share: their options, the names of the files they
keep, and running until the process manager stops them."""

import argparse
import itertools
import signal
import threading
from datetime import UTC, datetime
from pathlib import Path


def arguments(description: str, port: int, directory: str) -> argparse.Namespace:
    """--host, --port and --dir (where received things are kept), with the sink's defaults."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=port)
    parser.add_argument("--dir", type=Path, default=Path(directory))
    return parser.parse_args()


class FileNames:
    """<time>-<n> names: in the order received, never the same twice (safe across threads)."""

    def __init__(self) -> None:
        self._numbers = itertools.count(1)
        self._lock = threading.Lock()

    def next(self) -> tuple[str, str]:
        """The time stamp and the name for the next file (without its suffix)."""
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%f")
        with self._lock:
            return stamp, f"{stamp}-{next(self._numbers)}"


def wait_until_stopped(banner: str) -> None:
    """Print what the sink is, then block until SIGTERM or SIGINT."""
    print(banner, flush=True)
    stopped = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    signal.signal(signal.SIGINT, lambda *_: stopped.set())
    stopped.wait()
