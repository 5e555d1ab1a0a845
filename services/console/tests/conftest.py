"""Fixtures of the console's tests: the console in-process, the services faked at HTTP level."""

import json
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from rapport_console.main import create_app
from rapport_console.settings import DEVELOPMENT_PASSWORD
from rapport_console.testing import FakeServices, fake_settings

Login = Callable[[str], Awaitable[httpx.AsyncClient]]


@pytest.fixture
def fakes() -> FakeServices:
    return FakeServices()


@pytest.fixture
async def console(tmp_path: Path, fakes: FakeServices) -> AsyncIterator[FastAPI]:
    settings = fake_settings(database_url=f"sqlite:///{tmp_path}/console.db")
    app = create_app(settings, transport=fakes.transport())
    async with app.router.lifespan_context(app):
        yield app


@pytest.fixture
async def login(console: FastAPI) -> AsyncIterator[Login]:
    """Log in as one of the development operators (named after their role)."""
    clients: list[httpx.AsyncClient] = []

    async def _login(username: str) -> httpx.AsyncClient:
        client = anonymous_client(console)
        clients.append(client)
        reply = await log_in(client, username, DEVELOPMENT_PASSWORD)
        assert reply.status_code == 303, reply.text
        return client

    yield _login
    for client in clients:
        await client.aclose()


def anonymous_client(app: FastAPI) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://console.test")


def form_token(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, "no CSRF token in the form"
    return match.group(1)


async def log_in(client: httpx.AsyncClient, username: str, password: str) -> httpx.Response:
    page = await client.get("/login")
    return await client.post(
        "/login",
        data={"username": username, "password": password, "csrf_token": form_token(page.text)},
    )


def writes(fakes: FakeServices, method: str = "", path: str = "") -> list[tuple[str, Any]]:
    """The writes the console sent the services (path and JSON body), of a method and path."""
    return [
        (r.url.path, json.loads(r.content) if r.content else None)
        for r in fakes.requests
        if r.method != "GET"
        and (not method or r.method == method)
        and (not path or r.url.path == path)
    ]
