"""Published JSON Schemas stay compatible with the models; every designed type has a model."""

import copy
import json
import re
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from rapport_events import codec, schemas
from rapport_events.schemas import (
    SCHEMA_DIR,
    compatibility_problems,
    current_schemas,
    event_schema,
    export_schemas,
    load_schema,
    render,
    schema_path,
)
from rapport_events.testing.examples import example_events
from rapport_events.types import EVENT_MODELS, EVENT_TYPES, LineItem, OrderCompleted

# The table of event types in DESIGN.md ("The event types, at least").
DESIGN_TYPES = (
    "customer.registered",
    "customer.updated",
    "customer.merged",
    "customer.erased",
    "consent.granted",
    "consent.revoked",
    "interaction.tracked",
    "cart.updated",
    "order.completed",
    "survey.completed",
    "loyalty.points.earned",
    "segment.entered",
    "segment.exited",
    "campaign.message.sent",
    "campaign.message.delivered",
    "campaign.message.opened",
    "campaign.message.clicked",
    "campaign.conversion.attributed",
    "ticket.opened",
    "ticket.updated",
    "ticket.resolved",
    "ticket.rated",
    "social.mention.received",
    "partner.data.disclosed",
    "partner.event.contributed",
)

TYPE_IDS = [model.TYPE for model in EVENT_MODELS]


class TestCommittedSchemas:
    """The files in libs/events/schemas/ are the published contract."""

    @pytest.mark.parametrize("model", EVENT_MODELS, ids=TYPE_IDS)
    def test_every_model_has_a_committed_schema(self, model: type) -> None:
        assert schema_path(SCHEMA_DIR, model.TYPE).is_file(), "run `make schemas` and commit"

    @pytest.mark.parametrize("model", EVENT_MODELS, ids=TYPE_IDS)
    def test_model_is_backward_compatible_with_its_published_schema(self, model: type) -> None:
        # Fails when a published type changes incompatibly: add a .vN type and an upcaster.
        published = load_schema(schema_path(SCHEMA_DIR, model.TYPE))

        assert compatibility_problems(published, event_schema(model)) == []

    @pytest.mark.parametrize("model", EVENT_MODELS, ids=TYPE_IDS)
    def test_committed_schema_is_up_to_date(self, model: type) -> None:
        committed = schema_path(SCHEMA_DIR, model.TYPE).read_text(encoding="utf-8")

        assert committed == render(event_schema(model)), "run `make schemas` and commit"

    def test_every_committed_schema_is_a_current_type_or_upcast(self) -> None:
        for path in SCHEMA_DIR.glob("*.json"):
            event_type = path.name.removesuffix(".json")
            assert event_type in EVENT_TYPES or event_type in codec.UPCASTERS, path

    def test_check_command_passes_on_the_repository(self, capsys: pytest.CaptureFixture) -> None:
        assert schemas.main(["--check"]) == 0
        assert "compatible" in capsys.readouterr().out


class TestExport:
    def test_writes_one_sorted_indented_file_per_type(self, tmp_path: Path) -> None:
        written = export_schemas(tmp_path)

        assert sorted(p.name for p in written) == sorted(f"{t}.json" for t in EVENT_TYPES)
        text = (tmp_path / "rapport.order.completed.v1.json").read_text(encoding="utf-8")
        schema = json.loads(text)
        assert text == json.dumps(schema, indent=2, sort_keys=True) + "\n"
        assert text.startswith('{\n  "$defs"')
        assert schema["$id"] == "rapport.order.completed.v1"
        assert schema["title"] == "OrderCompleted"
        assert schema["$defs"]["LineItem"]["required"] == ["product_id", "price"]

    def test_describes_the_wire_form(self) -> None:
        # Decimals travel as strings and the type travels in ce_type, not in the data.
        schema = event_schema(OrderCompleted)

        assert schema["properties"]["revenue"]["type"] == "string"
        assert "type" not in schema["properties"]
        assert set(schema["required"]) == {"customer_id", "order_id", "items", "revenue"}

    def test_keeps_files_of_retired_types(self, tmp_path: Path) -> None:
        retired = tmp_path / "rapport.order.completed.v0.json"
        retired.write_text("{}\n")

        export_schemas(tmp_path)

        assert retired.read_text() == "{}\n"

    def test_main_exports_to_the_given_directory(self, tmp_path: Path) -> None:
        assert schemas.main(["--dir", str(tmp_path)]) == 0
        assert len(list(tmp_path.glob("*.json"))) == len(EVENT_MODELS)


class TestCheck:
    def test_passes_on_a_fresh_export(self, tmp_path: Path) -> None:
        export_schemas(tmp_path)

        assert schemas.check(tmp_path) == ([], [])

    def test_fails_when_a_model_has_no_committed_schema(
        self, tmp_path: Path, capsys: pytest.CaptureFixture
    ) -> None:
        export_schemas(tmp_path)
        (tmp_path / "rapport.ticket.rated.v1.json").unlink()

        assert schemas.main(["--check", "--dir", str(tmp_path)]) == 1
        assert "rapport.ticket.rated.v1: no committed schema" in capsys.readouterr().err

    def test_fails_when_the_model_changed_incompatibly(
        self, tmp_path: Path, capsys: pytest.CaptureFixture
    ) -> None:
        # Pretend the published v1 had a field the current model has dropped.
        export_schemas(tmp_path)
        path = tmp_path / "rapport.ticket.rated.v1.json"
        published = load_schema(path)
        published["properties"]["channel"] = {"type": "string"}
        path.write_text(render(published))

        assert schemas.main(["--check", "--dir", str(tmp_path)]) == 1
        err = capsys.readouterr().err
        assert "rapport.ticket.rated.v1: channel: property removed" in err

    def test_notes_but_accepts_a_compatible_change_not_yet_exported(self, tmp_path: Path) -> None:
        export_schemas(tmp_path)
        path = tmp_path / "rapport.ticket.rated.v1.json"
        published = load_schema(path)
        del published["properties"]["comment"]  # the current model added an optional field
        path.write_text(render(published))

        problems, notes = schemas.check(tmp_path)

        assert problems == []
        assert notes == [
            "rapport.ticket.rated.v1: compatible change not exported yet (run make schemas)"
        ]

    def test_fails_on_a_published_type_without_model_or_upcaster(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        export_schemas(tmp_path)
        (tmp_path / "rapport.test.retired.v1.json").write_text("{}\n")

        problems, _ = schemas.check(tmp_path)
        assert problems == ["rapport.test.retired.v1: published type has no model and no upcaster"]

        monkeypatch.setitem(codec.UPCASTERS, "rapport.test.retired.v1", lambda d: ("x", d))
        assert schemas.check(tmp_path) == ([], [])


def _published() -> dict[str, Any]:
    """A small published schema in pydantic's shape: $defs, $ref, anyOf, enum, format."""
    return {
        "$id": "rapport.test.thing.v1",
        "$defs": {
            "Status": {"enum": ["new", "open", "closed"], "type": "string"},
            "Line": {
                "properties": {
                    "sku": {"type": "string"},
                    "quantity": {"type": "integer", "minimum": 1},
                },
                "required": ["sku"],
                "type": "object",
            },
        },
        "properties": {
            "customer_id": {"type": "string", "maxLength": 64},
            "occurred_at": {"type": "string", "format": "date-time"},
            "status": {"$ref": "#/$defs/Status"},
            "kind": {"const": "page", "type": "string"},
            "note": {"anyOf": [{"type": "string"}, {"type": "null"}], "default": None},
            "born": {"anyOf": [{"type": "string", "format": "date"}, {"type": "null"}]},
            "lines": {"items": {"$ref": "#/$defs/Line"}, "type": "array"},
            "tags": {"additionalProperties": {"type": "string"}, "type": "object"},
            "properties": {"additionalProperties": True, "type": "object"},
        },
        "required": ["customer_id", "status"],
        "title": "Thing",
        "type": "object",
    }


def _changed(edit: Any) -> dict[str, Any]:
    schema = copy.deepcopy(_published())
    edit(schema)
    return schema


class TestCompatibilityProblems:
    """What a consumer holding the new schema can no longer read from the log."""

    def test_identical_schemas_are_compatible(self) -> None:
        assert compatibility_problems(_published(), _published()) == []

    def test_added_optional_property_is_compatible(self) -> None:
        new = _changed(lambda s: s["properties"].update(channel={"type": "string"}))

        assert compatibility_problems(_published(), new) == []

    def test_widening_is_compatible(self) -> None:
        def widen(s: dict[str, Any]) -> None:
            s["$defs"]["Line"]["properties"]["quantity"] = {"type": "number"}
            s["$defs"]["Status"]["enum"].append("pending")
            s["properties"]["customer_id"] = {"anyOf": [{"type": "string"}, {"type": "null"}]}
            s["properties"]["occurred_at"] = {"type": "string"}
            s["properties"]["tags"]["additionalProperties"] = True
            s["required"].remove("status")

        assert compatibility_problems(_published(), _changed(widen)) == []

    def test_removed_property(self) -> None:
        new = _changed(lambda s: s["properties"].pop("note"))

        assert compatibility_problems(_published(), new) == ["note: property removed"]

    def test_removed_property_of_a_nested_definition(self) -> None:
        new = _changed(lambda s: s["$defs"]["Line"]["properties"].pop("quantity"))

        assert compatibility_problems(_published(), new) == ["lines[].quantity: property removed"]

    def test_newly_required_property(self) -> None:
        new = _changed(lambda s: s["required"].append("note"))

        assert compatibility_problems(_published(), new) == ["note: property newly required"]

    def test_new_required_property(self) -> None:
        def add(s: dict[str, Any]) -> None:
            s["properties"]["channel"] = {"type": "string"}
            s["required"].append("channel")

        assert compatibility_problems(_published(), _changed(add)) == [
            "channel: property newly required"
        ]

    def test_type_change(self) -> None:
        new = _changed(lambda s: s["properties"].update(customer_id={"type": "integer"}))

        assert compatibility_problems(_published(), new) == [
            "customer_id: type changed, string is no longer accepted (now integer)"
        ]

    def test_number_narrowed_to_integer(self) -> None:
        old = _changed(lambda s: s["properties"].update(score={"type": "number"}))
        new = _changed(lambda s: s["properties"].update(score={"type": "integer"}))

        assert compatibility_problems(old, new) == [
            "score: type changed, number is no longer accepted (now integer)"
        ]

    def test_nullable_made_required_value(self) -> None:
        new = _changed(lambda s: s["properties"].update(note={"type": "string"}))

        assert compatibility_problems(_published(), new) == [
            "note: type changed, null is no longer accepted (now string)"
        ]

    def test_type_change_behind_a_ref(self) -> None:
        new = _changed(lambda s: s["$defs"]["Line"]["properties"].update(sku={"type": "integer"}))

        assert compatibility_problems(_published(), new) == [
            "lines[].sku: type changed, string is no longer accepted (now integer)"
        ]

    def test_format_change(self) -> None:
        def to_datetime(s: dict[str, Any]) -> None:
            s["properties"]["born"]["anyOf"][0]["format"] = "date-time"

        assert compatibility_problems(_published(), _changed(to_datetime)) == [
            "born: format changed from format date to date-time"
        ]

    def test_format_added(self) -> None:
        new = _changed(lambda s: s["properties"]["customer_id"].update(format="uuid"))

        assert compatibility_problems(_published(), new) == [
            "customer_id: format changed from no format to uuid"
        ]

    def test_removed_enum_value(self) -> None:
        new = _changed(lambda s: s["$defs"]["Status"]["enum"].remove("closed"))

        assert compatibility_problems(_published(), new) == [
            'status: enum value(s) removed: "closed"'
        ]

    def test_removed_enum_value_of_a_nullable_literal(self) -> None:
        def nullable_enum(values: list[str]) -> dict[str, Any]:
            return {"anyOf": [{"enum": values, "type": "string"}, {"type": "null"}]}

        old = _changed(lambda s: s["properties"].update(channel=nullable_enum(["email", "sms"])))
        new = _changed(lambda s: s["properties"].update(channel=nullable_enum(["email"])))

        assert compatibility_problems(old, new) == ['channel: enum value(s) removed: "sms"']

    def test_changed_const(self) -> None:
        new = _changed(lambda s: s["properties"]["kind"].update(const="screen"))

        assert compatibility_problems(_published(), new) == ['kind: enum value(s) removed: "page"']

    def test_free_string_narrowed_to_an_enum(self) -> None:
        new = _changed(lambda s: s["properties"]["customer_id"].update(enum=["a", "b"]))

        assert compatibility_problems(_published(), new) == [
            'customer_id: narrowed to the values "a", "b"'
        ]

    def test_tightened_bounds(self) -> None:
        def tighten(s: dict[str, Any]) -> None:
            s["properties"]["customer_id"]["maxLength"] = 32
            s["$defs"]["Line"]["properties"]["quantity"]["minimum"] = 2

        assert compatibility_problems(_published(), _changed(tighten)) == [
            "customer_id: maxLength narrowed from 64 to 32",
            "lines[].quantity: minimum narrowed from 1 to 2",
        ]

    def test_map_values_narrowed(self) -> None:
        def narrow(s: dict[str, Any]) -> None:
            s["properties"]["tags"]["additionalProperties"] = {"type": "integer"}
            s["properties"]["properties"]["additionalProperties"] = {"type": "string"}

        assert compatibility_problems(_published(), _changed(narrow)) == [
            "tags{}: type changed, string is no longer accepted (now integer)",
            "properties{}: narrowed from any value to string",
        ]

    def test_reports_every_problem_at_once(self) -> None:
        def break_everything(s: dict[str, Any]) -> None:
            s["properties"].pop("note")
            s["required"].append("born")
            s["$defs"]["Status"]["enum"] = ["new"]

        problems = compatibility_problems(_published(), _changed(break_everything))

        assert sorted(problems) == [
            "born: property newly required",
            "note: property removed",
            'status: enum value(s) removed: "open", "closed"',
        ]

    def test_recursive_definitions_terminate(self) -> None:
        node = {
            "$defs": {
                "Node": {
                    "properties": {
                        "child": {"anyOf": [{"$ref": "#/$defs/Node"}, {"type": "null"}]}
                    },
                    "type": "object",
                }
            },
            "$ref": "#/$defs/Node",
        }

        assert compatibility_problems(node, copy.deepcopy(node)) == []

    def test_catches_a_real_model_change(self) -> None:
        # The shape of a breaking edit to a real model: LineItem.price made an integer.
        published = event_schema(OrderCompleted)
        edited = copy.deepcopy(published)
        edited["$defs"]["LineItem"]["properties"]["price"] = {"type": "integer"}

        assert compatibility_problems(published, edited) == [
            "items[].price: type changed, string is no longer accepted (now integer)"
        ]


class TestEventModels:
    @pytest.mark.parametrize("name", DESIGN_TYPES)
    def test_every_designed_type_has_a_model(self, name: str) -> None:
        # The current version, or v1 read as it through upcasters.
        assert codec.upcast(f"rapport.{name}.v1", {})[0] in EVENT_TYPES

    def test_types_are_unique_dotted_lowercase_and_versioned(self) -> None:
        types = [model.TYPE for model in EVENT_MODELS]

        assert len(set(types)) == len(types)
        for event_type in types:
            assert re.fullmatch(r"rapport(\.[a-z]+)+\.v[0-9]+", event_type), event_type

    @pytest.mark.parametrize("model", EVENT_MODELS, ids=TYPE_IDS)
    def test_models_are_frozen(self, model: type) -> None:
        assert model.model_config.get("frozen") is True

    def test_line_items_are_frozen(self) -> None:
        assert LineItem.model_config.get("frozen") is True

    @pytest.mark.parametrize("event", example_events(), ids=TYPE_IDS)
    def test_an_event_cannot_be_changed(self, event: Any) -> None:
        with pytest.raises(ValidationError):
            event.customer_id = "someone-else"

    def test_current_schemas_cover_every_model(self) -> None:
        assert list(current_schemas()) == TYPE_IDS
