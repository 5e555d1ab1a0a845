"""Service processes for the HTTP cases: a Stack on this run's broker, seeded over HTTP."""

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx

from bench.core import Context
from rapport_events.settings import KafkaSettings
from rapport_events.testing.stack import SERVICES, Stack


@asynccontextmanager
async def running_stack(
    ctx: Context,
    names: list[str],
    kind: str,
    label: str,
    extra_env: dict[str, str] | None = None,
) -> AsyncIterator[tuple[Stack, KafkaSettings, dict[str, str]]]:
    """Start `names` as uvicorn processes on fresh databases of `kind` and a fresh topic;
    the services started after profile call this profile (partner-share fills slices from it).
    `extra_env` is added to the services' environment (e.g. `RAPPORT_TRACE_DIR`)."""
    settings = await ctx.topic(label)
    databases = {
        name: await ctx.database(kind, f"{label}-{name.replace('-', '_')}") for name in names
    }
    workdir = ctx.workdir / f"{label}-{uuid.uuid4().hex[:6]}"
    workdir.mkdir(parents=True)
    env = {**ctx.kafka_env(settings), **(extra_env or {})}
    stack = Stack(workdir=workdir, env=env, databases=databases)
    try:
        for name in names:
            stack.start([name])
            if name == "profile":
                urls = {
                    f"{p}PROFILE_URL": stack.url(name)
                    for n, (_, p) in SERVICES.items()
                    if n != name
                }
                env.update(urls)
        await asyncio.to_thread(stack.wait_ready, 120.0)
        yield stack, settings, databases
    finally:
        await asyncio.to_thread(stack.stop)


def new_customer(label: str) -> dict[str, str]:
    tag = uuid.uuid4().hex[:12]
    return {
        "email": f"{label}-{tag}@example.com",
        "first_name": "Ada",
        "last_name": "Lovelace",
        "country": "GB",
        "city": "London",
    }


async def create_customer(http: httpx.AsyncClient, profile_url: str, label: str) -> str:
    reply = await http.post(f"{profile_url}/customers", json=new_customer(label))
    if reply.status_code != 201:
        raise RuntimeError(f"POST /customers answered {reply.status_code}: {reply.text[:300]}")
    return str(reply.json()["id"])


async def create_customers(
    http: httpx.AsyncClient, profile_url: str, count: int, concurrency: int, label: str
) -> list[str]:
    """`count` customers, `concurrency` at a time."""
    ids: list[str] = []

    async def worker(share: int) -> None:
        for _ in range(share):
            ids.append(await create_customer(http, profile_url, label))

    shares = [
        count // concurrency + (1 if i < count % concurrency else 0) for i in range(concurrency)
    ]
    await asyncio.gather(*(worker(share) for share in shares if share))
    return ids
