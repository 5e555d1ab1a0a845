"""Which routes each service has right now, read from its OpenAPI document.

The apps are built in a subprocess: create_app() installs process-wide tracing and
httpx instrumentation, which must not leak into the process that drives the load.
"""

import asyncio
import json
import re
import sys

from bench.http_load import ROOT

_SCRIPT = """
import json
from rapport_events.testing.stack import SERVICES
from uvicorn.importer import import_from_string

paths = {}
for name, (factory, _prefix) in SERVICES.items():
    try:
        paths[name] = sorted(import_from_string(factory)().openapi()["paths"])
    except Exception as error:
        paths[name] = f"{type(error).__name__}: {error}"
print("OPENAPI " + json.dumps(paths))
"""
_cache: dict[str, list[str] | str] | None = None


def template(path: str) -> str:
    """`/customers/{customer_id}` and `/customers/{id}` are the same route."""
    return re.sub(r"\{[^}]*\}", "{}", path)


async def service_paths(timeout: float = 120.0) -> dict[str, list[str] | str]:
    """Route templates by service; a string instead of a list is why the app did not build."""
    global _cache
    if _cache is None:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            _SCRIPT,
            cwd=ROOT,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            async with asyncio.timeout(timeout):
                out, err = await process.communicate()
        except TimeoutError:
            process.kill()
            await process.wait()
            raise
        lines = [line for line in out.decode().splitlines() if line.startswith("OPENAPI ")]
        if not lines:
            raise RuntimeError(f"could not read the services' OpenAPI: {err.decode()[-1000:]}")
        raw = json.loads(lines[-1].removeprefix("OPENAPI "))
        _cache = {
            name: value if isinstance(value, str) else [template(p) for p in value]
            for name, value in raw.items()
        }
    return _cache


async def missing_routes(required: dict[str, list[str]]) -> list[str]:
    """The `service path` pairs of `required` that no app has yet."""
    paths = await service_paths()
    missing: list[str] = []
    for service, wanted in required.items():
        have = paths.get(service, [])
        if isinstance(have, str):
            raise RuntimeError(f"{service} app does not build: {have}")
        missing.extend(f"{service} {path}" for path in wanted if template(path) not in have)
    return missing
