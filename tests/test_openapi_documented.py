"""Every service's OpenAPI document says what the service is, who may call what, and how."""

from typing import Any

import pytest
from fastapi import FastAPI

from rapport_events.http import summary_is_generated


def _app(name: str) -> FastAPI:
    if name == "profile":
        from rapport_profile.main import create_app
    elif name == "campaign":
        from rapport_campaign.main import create_app  # type: ignore[assignment]
    elif name == "support":
        from rapport_support.main import create_app  # type: ignore[assignment]
    elif name == "sales":
        from rapport_sales.main import create_app  # type: ignore[assignment]
    else:
        from rapport_partner_share.main import create_app  # type: ignore[assignment]
    return create_app()


SERVICES = ["profile", "campaign", "support", "partner-share", "sales"]
BEARER = {"type": "http", "scheme": "bearer"}
# What each service's routes really check (see each service's deps.py).
SCHEMES: dict[str, dict[str, dict[str, str]]] = {
    "profile": {"bearer": BEARER, "writeKey": {"type": "http", "scheme": "basic"}},
    "campaign": {"bearer": BEARER},
    "support": {"bearer": BEARER},
    "partner-share": {
        "bearer": BEARER,
        "partnerApiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
    },
    "sales": {"bearer": BEARER},
}
PUBLIC = ("/healthz", "/readyz", "/t/", "/o/", "/u/")


def expected_scheme(path: str) -> str | None:
    if path.startswith(PUBLIC):
        return None
    if path.startswith("/v1/"):
        return "writeKey"
    if path.startswith("/partner/v1/"):
        return "partnerApiKey"
    return "bearer"


def operations(openapi: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method.upper(), path, operation)
        for path, item in openapi["paths"].items()
        for method, operation in item.items()
    ]


@pytest.fixture(scope="module", params=SERVICES)
def service(request: pytest.FixtureRequest) -> tuple[str, dict[str, Any]]:
    return request.param, _app(request.param).openapi()


class TestOpenApi:
    def test_info_says_what_the_service_is(self, service: tuple[str, dict[str, Any]]) -> None:
        name, openapi = service
        assert name in openapi["info"]["title"]
        assert "Rapport" in openapi["info"]["description"]
        assert "Authentication" in openapi["info"]["description"]

    def test_every_operation_is_tagged_and_summarised(
        self, service: tuple[str, dict[str, Any]]
    ) -> None:
        _name, openapi = service
        declared = {tag["name"] for tag in openapi.get("tags", [])}
        for method, path, operation in operations(openapi):
            assert operation.get("tags"), f"{method} {path} has no tag"
            assert set(operation["tags"]) <= declared, f"{method} {path}: undeclared tag"
            assert operation.get("summary"), f"{method} {path} has no summary"
            assert not summary_is_generated(operation), (
                f"{method} {path}: the summary is the function's name; give it a docstring"
            )

    def test_security_schemes_are_declared_and_required_where_checked(
        self, service: tuple[str, dict[str, Any]]
    ) -> None:
        name, openapi = service
        schemes = openapi["components"]["securitySchemes"]
        for scheme, expected in SCHEMES[name].items():
            assert scheme in schemes, f"{name} does not declare {scheme}"
            assert expected.items() <= schemes[scheme].items(), (name, scheme, schemes[scheme])
            assert schemes[scheme].get("description")
        for method, path, operation in operations(openapi):
            wanted = expected_scheme(path)
            required = [next(iter(entry)) for entry in operation.get("security", [])]
            assert required == ([wanted] if wanted else []), f"{name} {method} {path}: {required}"
            if wanted:
                assert "401" in operation["responses"], f"{method} {path} does not document 401"


MAIN_BODIES = {
    "profile": ["/customers", "/v1/identify", "/v1/track", "/v1/page", "/v1/batch"],
    "campaign": ["/segments", "/campaigns"],
    "support": ["/tickets"],
    "partner-share": ["/partners"],
    "sales": ["/accounts", "/opportunities"],
}


def _body_examples(openapi: dict[str, Any], path: str) -> list[Any]:
    content = openapi["paths"][path]["post"]["requestBody"]["content"]["application/json"]
    if "example" in content:
        return [content["example"]]
    if "examples" in content:
        return [example["value"] for example in content["examples"].values()]
    schema = content["schema"]
    if "$ref" in schema:
        schema = openapi["components"]["schemas"][schema["$ref"].rsplit("/", 1)[-1]]
    return list(schema.get("examples", []))


class TestExamples:
    def test_the_main_routes_show_a_request_example(
        self, service: tuple[str, dict[str, Any]]
    ) -> None:
        name, openapi = service
        for path in MAIN_BODIES[name]:
            assert _body_examples(openapi, path), f"{name} POST {path} has no example"

    @pytest.mark.parametrize(
        ("name", "path"), [("profile", "/customers"), ("partner-share", "/partners")]
    )
    def test_the_main_replies_show_an_example(self, name: str, path: str) -> None:
        openapi = _app(name).openapi()
        content = openapi["paths"][path]["post"]["responses"]["201"]["content"]
        ref = content["application/json"]["schema"]["$ref"].rsplit("/", 1)[-1]
        assert openapi["components"]["schemas"][ref]["examples"], (name, path)

    def test_request_examples_are_accepted_as_they_are(self) -> None:
        from rapport_campaign.campaigns.models import CampaignCreate
        from rapport_partner_share.partners.models import PartnerCreate, PartnerCreated
        from rapport_profile.customers.models import CustomerCreate, CustomerPublic
        from rapport_support.tickets.models import TicketCreate

        models = (CustomerCreate, CustomerPublic, TicketCreate, PartnerCreate, PartnerCreated)
        for model in (*models, CampaignCreate):
            examples = model.model_json_schema()["examples"]
            for example in examples:
                model.model_validate(example)

    def test_tracking_examples_parse_as_segment_messages(self) -> None:
        from rapport_profile.tracking.docs import EXAMPLES
        from rapport_profile.tracking.parsing import parse_messages

        for kind, example in EXAMPLES.items():
            messages = parse_messages(example, None if kind == "batch" else kind)
            assert messages, kind
        assert len(parse_messages(EXAMPLES["batch"], None)) == 5

    def test_the_tracking_reply_has_an_example(self) -> None:
        openapi = _app("profile").openapi()
        reply = openapi["paths"]["/v1/track"]["post"]["responses"]["200"]
        assert reply["content"]["application/json"]["example"] == {"success": True}
