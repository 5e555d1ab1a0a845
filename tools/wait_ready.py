"""Wait until every service answers /readyz, print where they are, then stay up.

Run by `make run` beside the services: honcho stops the whole stack when any
of its processes exits, so this one exits only when the stack did not come up.
"""

import os
import sys
import time

import httpx

SERVICES = {
    "profile": 8001,
    "campaign": 8002,
    "support": 8003,
    "partner-share": 8004,
    "sales": 8005,
}
TIMEOUT_S = float(os.environ.get("RAPPORT_READY_TIMEOUT", "60"))
TOKEN = os.environ.get("RAPPORT_API_TOKEN", "rapport-dev-token")
# The operators' web app; `make run` has one development operator per role.
CONSOLE = ("console", 8000)
CONSOLE_OPERATORS = "admin, marketer, support, privacy"
CONSOLE_PASSWORD = "rapport-dev-password"


def not_ready(client: httpx.Client) -> list[str]:
    waiting = []
    for name, port in [*SERVICES.items(), CONSOLE]:
        try:
            if client.get(f"http://127.0.0.1:{port}/readyz").status_code != 200:
                waiting.append(name)
        except httpx.HTTPError:
            waiting.append(name)
    return waiting


def main() -> int:
    started = time.monotonic()
    with httpx.Client(timeout=2.0) as client:
        waiting = not_ready(client)
        while waiting and time.monotonic() - started < TIMEOUT_S:
            time.sleep(0.5)
            waiting = not_ready(client)
    if waiting:
        print(f"not ready after {TIMEOUT_S:.0f}s: {', '.join(waiting)}", flush=True)
        return 1
    print(f"all services ready in {time.monotonic() - started:.1f}s", flush=True)
    for name, port in SERVICES.items():
        print(f"  {name:<14} http://127.0.0.1:{port}  (docs: http://127.0.0.1:{port}/docs)")
    print("  broker         127.0.0.1:9092 (topic rapport.customer-events)")
    print(f"  token          Authorization: Bearer {TOKEN}")
    print(f"  console        http://127.0.0.1:{CONSOLE[1]}  (log in as {CONSOLE_OPERATORS};")
    print(f"                 password {CONSOLE_PASSWORD})")
    print("Ctrl-C stops everything.", flush=True)
    while True:
        time.sleep(3600)


if __name__ == "__main__":
    sys.exit(main())
