"""The shared input limits: bounded types checked before anything recursive, and the body cap."""

from datetime import UTC, date, datetime
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from pydantic import BaseModel, ValidationError

from rapport_events.http import install_error_handlers, peer_url
from rapport_events.limits import (
    Checked,
    FreeJson,
    LimitExceeded,
    Line,
    SaneDate,
    SaneDatetime,
    StringMap,
    Text,
    check_json,
)


def nested(depth: int) -> Any:
    value: Any = []
    for _ in range(depth - 1):
        value = [value]
    return value


class Body(Checked):
    name: Line = "x"
    note: Text = ""
    handles: StringMap = {}
    properties: FreeJson = {}
    at: SaneDatetime | None = None
    born: SaneDate | None = None


def refusal(**fields: Any) -> str:
    with pytest.raises(ValidationError) as refused:
        Body.model_validate(fields)
    return str(refused.value)


class TestFreeJson:
    @pytest.mark.parametrize("depth", [300, 100_000])
    def test_nesting_past_the_limit_is_refused_without_recursing(self, depth: int) -> None:
        # The body's own bound (32) or the field's (16), whichever the walk meets first.
        assert "nested deeper than" in refusal(properties={"a": nested(depth)})

    def test_a_field_has_its_own_tighter_nesting_bound(self) -> None:
        assert "properties" in refusal(properties={"a": nested(17)})
        assert "nested deeper than 16" in refusal(properties={"a": nested(17)})

    def test_a_whole_body_nested_past_its_limit_is_refused(self) -> None:
        assert "nested deeper than 32" in refusal(extra=nested(100_000))

    def test_too_many_entries_in_all_are_refused(self) -> None:
        assert "more than 1000 entries" in refusal(
            properties={"a": list(range(600)), "b": list(range(600))}
        )

    def test_long_strings_and_keys_are_refused(self) -> None:
        assert "longer than 10000" in refusal(properties={"a": "x" * 100_000})
        assert "key in" in refusal(properties={"k" * 100_000: 1})

    @pytest.mark.parametrize("text", ["a\u0000", "\u001b[31m", "a\u007f", "a\u0085", "\ud800"])
    def test_control_characters_in_values_and_keys_are_refused(self, text: str) -> None:
        assert "control characters" in refusal(properties={"a": [{"b": text}]})
        assert "control characters" in refusal(properties={text: 1})

    def test_ordinary_json_passes(self) -> None:
        body = Body.model_validate(
            {"properties": {"a": {"b": [1, 2.5, None, True, "tab\there\n"]}}}
        )
        assert body.properties["a"]["b"][4] == "tab\there\n"

    def test_the_walk_stops_at_the_first_problem_and_names_it(self) -> None:
        with pytest.raises(LimitExceeded, match=r"props\.a\[1\] must not contain"):
            check_json({"a": ["ok", "\u0000"]}, "props")


class TestStrings:
    def test_a_line_refuses_every_control_character(self) -> None:
        for text in ("a\u0000", "a\nb", "a\tb"):
            assert "name" in refusal(name=text)

    def test_free_text_keeps_tabs_and_line_breaks(self) -> None:
        assert Body.model_validate({"note": "a\tb\r\nc"}).note == "a\tb\r\nc"
        assert "control characters" in refusal(note="a\u0000")

    def test_string_maps_are_bounded(self) -> None:
        assert "handles" in refusal(handles={f"k{i}": "v" for i in range(10_000)})
        assert "handles" in refusal(handles={"k": "v" * 100_000})
        assert "handles" in refusal(handles={"k" * 100: "v"})
        assert "handles" in refusal(handles={"k": "v\u0000"})


class TestDates:
    @pytest.mark.parametrize(
        "moment", ["0001-01-01T00:00:00Z", "9999-12-31T23:59:59Z", "1799-12-31T00:00:00"]
    )
    def test_datetimes_at_the_calendar_edges_are_refused(self, moment: str) -> None:
        assert "between 1800 and 2200" in refusal(at=moment)

    def test_dates_at_the_calendar_edges_are_refused(self) -> None:
        assert "born" in refusal(born="0001-01-01")
        assert "born" in refusal(born="9999-12-31")

    def test_sane_moments_pass(self) -> None:
        body = Body.model_validate({"at": "2030-01-01T09:00:00+02:00", "born": "1950-05-01"})
        assert body.at == datetime(2030, 1, 1, 7, tzinfo=UTC)
        assert body.born == date(1950, 5, 1)


class TestPeerUrls:
    @pytest.mark.parametrize(
        "customer_id, path",
        [
            ("..?", "/customers/..%3F/export"),
            ("..", "/customers/%2E%2E/export"),
            ("a/b#c", "/customers/a%2Fb%23c/export"),
            ("50%", "/customers/50%25/export"),
        ],
    )
    def test_an_id_stays_one_segment_of_the_peers_path(self, customer_id: str, path: str) -> None:
        url = httpx.URL(peer_url("http://campaign:8002/", "customers", customer_id, "export"))
        assert (url.host, url.raw_path.decode(), url.query) == ("campaign", path, b"")


class Item(BaseModel):
    name: str


def capped_app(max_bytes: int) -> FastAPI:
    app = FastAPI()
    app.state.settings = type("Settings", (), {"max_body_bytes": max_bytes})()
    install_error_handlers(app)

    @app.post("/items")
    async def create_item(item: Item) -> Item:
        return item

    return app


class TestBodyCap:
    async def test_bodies_over_the_cap_are_413_declared_or_streamed(self) -> None:
        app = capped_app(2048)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            small = await client.post("/items", json={"name": "x"})
            declared = await client.post("/items", json={"name": "x" * 4096})

            async def chunks() -> Any:
                for _ in range(8):
                    yield b" " * 1024

            streamed = await client.post(
                "/items", content=chunks(), headers={"content-type": "application/json"}
            )
        assert small.status_code == 200
        for response in (declared, streamed):
            assert response.status_code == 413, response.text
            assert response.json()["error"] == "too_large"
        assert "413" in app.openapi()["paths"]["/items"]["post"]["responses"]
