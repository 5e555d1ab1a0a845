"""JSON Schemas of the event types, and the check that a published one never breaks.

`python -m rapport_events.schemas` (what `make schemas` runs) writes one file per
type to libs/events/schemas/<ce type>.json. `--check` compares the committed
files with the current models and fails on a backward-incompatible change: a
consumer with the current model must still read every event already on the log.
"""

import argparse
import json
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from rapport_events.base import Event
from rapport_events.types import EVENT_MODELS

SCHEMA_DIR = Path(__file__).resolve().parent.parent / "schemas"
JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"

Schema = Mapping[str, Any]


# --- export -------------------------------------------------------------------


def event_schema(model: type[Event]) -> dict[str, Any]:
    """The JSON Schema of one event type's data, as it travels on the wire."""
    schema = model.model_json_schema(mode="serialization")
    schema["$schema"] = JSON_SCHEMA_DIALECT
    schema["$id"] = model.TYPE
    schema["title"] = model.__name__
    return schema


def render(schema: Schema) -> str:
    """The committed form: sorted keys, 2-space indent, trailing newline."""
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"


def schema_path(directory: Path, event_type: str) -> Path:
    return directory / f"{event_type}.json"


def current_schemas(models: Iterable[type[Event]] = EVENT_MODELS) -> dict[str, dict[str, Any]]:
    """Schemas of the current models by type."""
    return {model.TYPE: event_schema(model) for model in models}


def export_schemas(directory: Path | str = SCHEMA_DIR) -> list[Path]:
    """Write one schema file per event type; files of retired types are kept."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for event_type, schema in current_schemas().items():
        path = schema_path(directory, event_type)
        path.write_text(render(schema), encoding="utf-8")
        written.append(path)
    return written


def load_schema(path: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return loaded


# --- compatibility ------------------------------------------------------------

_UNION_KEYS = ("anyOf", "oneOf")
_ANY = "any"
_RESOLVED_REF = "\x00resolved-ref"  # marks a node that came from a $ref, never a JSON key


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


def _type_accepts(new_type: str, old_type: str) -> bool:
    return new_type in (old_type, _ANY) or (new_type == "number" and old_type == "integer")


def _values(node: Schema) -> list[Any] | None:
    """The literal values a node is restricted to (enum or const), else None."""
    if "const" in node:
        return [node["const"]]
    if "enum" in node:
        return list(node["enum"])
    return None


class _Comparison:
    """Compares one old schema document with one new one, resolving `$ref`s in each."""

    def __init__(self, old_root: Schema, new_root: Schema) -> None:
        self._roots = {"old": old_root, "new": new_root}
        # Pairs of definitions being compared, so a recursive model cannot loop forever.
        self._active: set[tuple[Any, Any]] = set()

    def _resolve(self, node: Any, side: str) -> dict[str, Any]:
        node = dict(node) if isinstance(node, Mapping) else {}
        seen: set[str] = set()
        while isinstance(node.get("$ref"), str) and node["$ref"] not in seen:
            ref = node.pop("$ref")
            seen.add(ref)
            node = {**self._lookup(ref, side), **node, _RESOLVED_REF: ref}
        if isinstance(node.get("allOf"), list):
            merged: dict[str, Any] = {}
            for part in node.pop("allOf"):
                merged.update(self._resolve(part, side))
            node = {**merged, **node}
        return node

    def _lookup(self, ref: str, side: str) -> dict[str, Any]:
        if not ref.startswith("#"):
            return {}  # an external reference: nothing to compare against
        target: Any = self._roots[side]
        for part in ref.lstrip("#").strip("/").split("/"):
            if not part:
                continue
            part = part.replace("~1", "/").replace("~0", "~")
            if not isinstance(target, Mapping) or part not in target:
                return {}
            target = target[part]
        return dict(target) if isinstance(target, Mapping) else {}

    def _branches(self, node: Any, side: str) -> list[tuple[str, dict[str, Any]]]:
        """A node as a list of (json type, single-type schema); type "any" accepts all."""
        node = self._resolve(node, side)
        for key in _UNION_KEYS:
            if isinstance(node.get(key), list):
                branches = []
                for option in node[key]:
                    branches.extend(self._branches(option, side))
                return _merge_value_branches(branches)
        declared = node.get("type")
        values = _values(node)
        if isinstance(declared, list):
            types = list(declared)
        elif isinstance(declared, str):
            types = [declared]
        elif values is not None:
            types = sorted({_json_type(value) for value in values})
        else:
            return [(_ANY, node)]
        branches = []
        for json_type in types:
            branch = dict(node)
            branch["type"] = json_type
            if values is not None:
                branch.pop("const", None)
                branch["enum"] = [v for v in values if _type_accepts(json_type, _json_type(v))]
            branches.append((json_type, branch))
        return _merge_value_branches(branches)

    def compare(self, old: Any, new: Any, path: str) -> list[str]:
        old_branches = self._branches(old, "old")
        new_branches = self._branches(new, "new")
        if any(json_type == _ANY for json_type, _ in new_branches):
            return []
        problems: list[str] = []
        new_types = sorted({json_type for json_type, _ in new_branches})
        for old_type, old_branch in old_branches:
            if old_type == _ANY:
                problems.append(f"{path}: narrowed from any value to {'|'.join(new_types)}")
                continue
            candidates = [
                branch for json_type, branch in new_branches if _type_accepts(json_type, old_type)
            ]
            if not candidates:
                problems.append(
                    f"{path}: type changed, {old_type} is no longer accepted "
                    f"(now {'|'.join(new_types)})"
                )
                continue
            outcomes = [self._compare_branch(old_type, old_branch, c, path) for c in candidates]
            if all(outcomes):
                problems.extend(outcomes[0])
        return _unique(problems)

    def _compare_branch(
        self, json_type: str, old: dict[str, Any], new: dict[str, Any], path: str
    ) -> list[str]:
        refs = (old.get(_RESOLVED_REF), new.get(_RESOLVED_REF))
        if refs != (None, None):
            if refs in self._active:
                return []  # already being compared further up: a recursive definition
            self._active.add(refs)
        try:
            problems = _value_problems(old, new, path) + _constraint_problems(old, new, path)
            if json_type == "object":
                problems += self._object_problems(old, new, path)
            elif json_type == "array" and ("items" in old or "items" in new):
                problems += self.compare(old.get("items", {}), new.get("items", {}), f"{path}[]")
            return problems
        finally:
            self._active.discard(refs)

    def _object_problems(self, old: dict[str, Any], new: dict[str, Any], path: str) -> list[str]:
        problems = []
        old_properties = old.get("properties") or {}
        new_properties = new.get("properties") or {}
        new_extra = new.get("additionalProperties", True)
        for name, old_property in old_properties.items():
            child = _join(path, name)
            if name in new_properties:
                problems += self.compare(old_property, new_properties[name], child)
            else:
                problems.append(f"{child}: property removed")
        for name in sorted(set(new.get("required") or ()) - set(old.get("required") or ())):
            problems.append(f"{_join(path, name)}: property newly required")
        old_extra = old.get("additionalProperties", True)
        if new_extra is False and old_extra is not False:
            problems.append(f"{path}: additional properties no longer allowed")
        elif isinstance(new_extra, Mapping):
            problems += self.compare(
                {} if old_extra is True else old_extra, new_extra, f"{path}{{}}"
            )
        return problems


def _merge_value_branches(
    branches: list[tuple[str, dict[str, Any]]],
) -> list[tuple[str, dict[str, Any]]]:
    """Fold enum/const branches of one type together: Literal["a"] | Literal["b"] is one enum."""
    merged: list[tuple[str, dict[str, Any]]] = []
    enums: dict[str, dict[str, Any]] = {}
    for json_type, branch in branches:
        values = _values(branch)
        if values is None or json_type == _ANY:
            merged.append((json_type, branch))
        elif json_type in enums:
            enums[json_type]["enum"] = enums[json_type]["enum"] + values
        else:
            folded = {k: v for k, v in branch.items() if k != "const"}
            folded["enum"] = list(values)
            enums[json_type] = folded
            merged.append((json_type, folded))
    return merged


def _value_problems(old: dict[str, Any], new: dict[str, Any], path: str) -> list[str]:
    new_values = _values(new)
    if new_values is None:
        return []
    old_values = _values(old)
    if old_values is None:
        return [f"{path}: narrowed to the values {_show(new_values)}"]
    removed = [value for value in old_values if value not in new_values]
    if removed:
        return [f"{path}: enum value(s) removed: {_show(removed)}"]
    return []


# (keyword, True when a larger new value narrows what is accepted)
_BOUNDS = (
    ("minimum", True),
    ("exclusiveMinimum", True),
    ("minLength", True),
    ("minItems", True),
    ("minProperties", True),
    ("maximum", False),
    ("exclusiveMaximum", False),
    ("maxLength", False),
    ("maxItems", False),
    ("maxProperties", False),
)


def _constraint_problems(old: dict[str, Any], new: dict[str, Any], path: str) -> list[str]:
    problems = []
    new_format, old_format = new.get("format"), old.get("format")
    if new_format is not None and new_format != old_format:
        was = f"format {old_format}" if old_format else "no format"
        problems.append(f"{path}: format changed from {was} to {new_format}")
    new_pattern, old_pattern = new.get("pattern"), old.get("pattern")
    if new_pattern is not None and new_pattern != old_pattern:
        problems.append(f"{path}: pattern changed to {new_pattern!r}")
    for keyword, larger_narrows in _BOUNDS:
        new_bound, old_bound = new.get(keyword), old.get(keyword)
        if not isinstance(new_bound, int | float):
            continue
        narrowed = (
            not isinstance(old_bound, int | float)
            or (larger_narrows and new_bound > old_bound)
            or (not larger_narrows and new_bound < old_bound)
        )
        if narrowed:
            problems.append(f"{path}: {keyword} narrowed from {old_bound} to {new_bound}")
    return problems


def _join(path: str, name: str) -> str:
    return name if path == "$" else f"{path}.{name}"


def _show(values: list[Any]) -> str:
    return ", ".join(json.dumps(value) for value in values)


def _unique(items: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(items))


def compatibility_problems(old_schema: Schema, new_schema: Schema) -> list[str]:
    """Why data valid under a published schema may be rejected by its successor; [] if none.

    Reports removed properties, newly required ones, changed or narrowed types
    (type, anyOf types, enum/const, format, bounds), following `$ref` into `$defs`.
    Additive optional properties are compatible.
    """
    return _Comparison(old_schema, new_schema).compare(old_schema, new_schema, "$")


# --- check --------------------------------------------------------------------


def check(directory: Path | str = SCHEMA_DIR) -> tuple[list[str], list[str]]:
    """(problems, notes) of the committed schemas against the current models.

    Problems: a model without a committed schema, an incompatible change, a
    published type that has neither a model nor an upcaster. Notes: compatible
    changes not yet exported.
    """
    from rapport_events.codec import UPCASTERS

    directory = Path(directory)
    problems: list[str] = []
    notes: list[str] = []
    current = current_schemas()
    for event_type, schema in current.items():
        path = schema_path(directory, event_type)
        if not path.exists():
            problems.append(f"{event_type}: no committed schema at {path} (run make schemas)")
            continue
        committed = load_schema(path)
        found = compatibility_problems(committed, schema)
        problems.extend(f"{event_type}: {problem}" for problem in found)
        if not found and render(committed) != render(schema):
            notes.append(f"{event_type}: compatible change not exported yet (run make schemas)")
    for path in sorted(directory.glob("*.json")):
        event_type = path.name.removesuffix(".json")
        if event_type not in current and event_type not in UPCASTERS:
            problems.append(f"{event_type}: published type has no model and no upcaster")
    return problems, notes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rapport_events.schemas", description=__doc__)
    parser.add_argument("--dir", type=Path, default=SCHEMA_DIR, help="schema directory")
    parser.add_argument(
        "--check",
        action="store_true",
        help="fail when a committed schema is missing or changed incompatibly",
    )
    args = parser.parse_args(argv)
    if not args.check:
        written = export_schemas(args.dir)
        print(f"wrote {len(written)} schemas to {args.dir}")
        return 0
    problems, notes = check(args.dir)
    for note in notes:
        print(f"note: {note}")
    if problems:
        for problem in problems:
            print(f"problem: {problem}", file=sys.stderr)
        print(
            "Export new types with `make schemas`. A published type must not change "
            "incompatibly: add a new .vN type and an upcaster from the old one.",
            file=sys.stderr,
        )
        return 1
    print(f"{len(current_schemas())} schemas are compatible with the committed files")
    return 0


if __name__ == "__main__":
    sys.exit(main())
