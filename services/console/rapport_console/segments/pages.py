"""Segments: the list, the rule builder with its live count, and one segment's members,
from campaign's API."""

import json
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from rapport_console.clients import Call, ServiceUnavailable
from rapport_console.operators.models import Operator
from rapport_console.roles import Permission, may
from rapport_console.segments import rules
from rapport_console.segments.rules import MAX_ROWS, Row, RuleError
from rapport_console.web import (
    CheckedFormDep,
    ClientsDep,
    EntityId,
    Forbidden,
    refusal,
    render,
    require,
)

router = APIRouter(include_in_schema=False)

SegmentViewer = Annotated[Operator, require(Permission.view_segments)]


@router.get("/segments", response_class=HTMLResponse)
async def segments_page(
    request: Request, clients: ClientsDep, _operator: SegmentViewer
) -> Response:
    """Every segment with its member count."""
    fanout = await clients.fan_out({"segments": Call("campaign", "/segments")})
    return render(
        request,
        "segments.html",
        {
            "segments": fanout.listed("segments"),
            **fanout.availability(),
        },
    )


@router.get("/segments/new", response_class=HTMLResponse)
async def segment_builder(_operator: SegmentViewer, request: Request) -> Response:
    """The rule builder, whose member count updates while the rule is edited."""
    return render(request, "segment_builder.html", _builder_context())


def _builder_context() -> dict[str, Any]:
    return {
        "fields": rules.FIELDS,
        "ops": {field: rules.ops_for(field) for field in rules.FIELDS},
        "rows": range(MAX_ROWS),
    }


async def _rule_of(request: Request) -> tuple[str, str, dict[str, Any]]:
    """The name, description and rule the builder's form holds (RuleError if none)."""
    form = await request.form()
    rows = [
        Row(
            field=str(form.get(f"field_{i}", ""))[:64],
            op=str(form.get(f"op_{i}", ""))[:32],
            value=str(form.get(f"value_{i}", ""))[:500],
        )
        for i in range(MAX_ROWS)
    ]
    rule = rules.rule_from(rows, str(form.get("combine", "all")))
    return str(form.get("name", ""))[:200], str(form.get("description", ""))[:2000], rule


def _require_segments(operator: Operator) -> None:
    if not may(operator.role, Permission.view_segments):
        raise Forbidden(operator, Permission.view_segments)


@router.post("/segments/preview", response_class=HTMLResponse)
async def segment_preview(
    request: Request, clients: ClientsDep, operator: CheckedFormDep
) -> Response:
    """How many customers the rule being edited matches now (the live count)."""
    _require_segments(operator)
    try:
        _, _, rule = await _rule_of(request)
        answer = await clients.post("campaign", "/segments/preview", {"rule": rule})
    except RuleError as error:
        return render(request, "_segment_count.html", {"problem": str(error)})
    except ServiceUnavailable as error:
        return render(request, "_segment_count.html", {"problem": f"no count: {error}"})
    if "error" in answer:
        return render(request, "_segment_count.html", {"problem": refusal(answer)})
    return render(
        request, "_segment_count.html", {"count": answer["count"], "rule": json.dumps(rule)}
    )


@router.post("/segments", response_class=HTMLResponse)
async def create_segment(
    request: Request, clients: ClientsDep, operator: CheckedFormDep
) -> Response:
    """Save the rule as a segment; campaign keeps its members current from then on."""
    _require_segments(operator)
    try:
        name, description, rule = await _rule_of(request)
        if not name.strip():
            raise RuleError("the segment needs a name")
        body = {"name": name.strip(), "description": description or None, "rule": rule}
        answer = await clients.post("campaign", "/segments", body)
    except (RuleError, ServiceUnavailable) as error:
        return render(request, "error.html", {"message": f"Not saved: {error}"}, 400)
    if "error" in answer:
        return render(request, "error.html", {"message": f"Not saved: {refusal(answer)}"}, 400)
    return RedirectResponse(f"/segments/{quote(answer['id'], safe='')}", status_code=303)


@router.get("/segments/{segment_id}", response_class=HTMLResponse)
async def segment_page(
    request: Request, segment_id: EntityId, clients: ClientsDep, _operator: SegmentViewer
) -> Response:
    """A segment's rule, count and members."""
    sid = quote(segment_id, safe="")
    fanout = await clients.fan_out(
        {
            "segment": Call("campaign", f"/segments/{sid}"),
            "members": Call("campaign", f"/segments/{sid}/members", {"limit": 100}),
        }
    )
    segment = fanout.get("segment")
    if segment is None and not fanout.partial:
        return render(request, "error.html", {"message": "No such segment."}, 404)
    return render(
        request,
        "segment.html",
        {
            "segment": segment or {"id": segment_id, "name": segment_id, "rule": {}},
            "rule": json.dumps((segment or {}).get("rule", {}), indent=2),
            "members": fanout.get("members", {}),
            **fanout.availability(),
        },
    )
