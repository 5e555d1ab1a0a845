"""The report: a Markdown table for people (and the README), JSON for machines."""

import json
import os
import platform
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.core import Result


def _number(value: float | None) -> str:
    if value is None:
        return "—"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:.1f}" if abs(value) >= 10 else f"{value:.2f}"


def _with_unit(value: float | None, metric: str) -> str:
    return _number(value) if value is None or not metric else f"{_number(value)} {metric}"


def table(results: Sequence[Result]) -> str:
    """One Markdown row per result: case, value, baseline, ratio, target, result, notes."""
    header = "| case | value | baseline | ratio | target | result | notes |"
    lines = [header, "|---|---:|---:|---:|---|---|---|"]
    for result in results:
        ratio = "—" if result.ratio is None else f"{result.ratio:.2g}×"
        target = result.target
        if target and result.metric == "ms":
            target += " ms"
        baseline = _with_unit(result.baseline, result.metric)
        if result.baseline_name and result.baseline is not None:
            baseline += f" ({result.baseline_name})"
        notes = result.notes.replace("|", "/")
        lines.append(
            f"| {result.case} | {_with_unit(result.value, result.metric)} | {baseline} "
            f"| {ratio} | {target or '—'} | {result.status} | {notes} |"
        )
    return "\n".join(lines)


def machine() -> dict[str, Any]:
    load = [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None
    return {
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "load_average": load,
    }


def document(
    results: Sequence[Result],
    *,
    mode: str,
    sizes: dict[str, Any],
    started: datetime,
    machine_before: dict[str, Any],
) -> dict[str, Any]:
    return {
        "started_at": started.isoformat(),
        "finished_at": datetime.now(UTC).isoformat(),
        "mode": mode,
        "sizes": sizes,
        "machine": {**machine_before, "load_average_after": machine()["load_average"]},
        "results": [result.to_json() for result in results],
    }


def write(doc: dict[str, Any], folder: Path) -> list[Path]:
    """latest.json and a timestamped copy under `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    stamp = datetime.fromisoformat(doc["started_at"]).strftime("%Y%m%dT%H%M%SZ")
    text = json.dumps(doc, indent=2, default=str) + "\n"
    paths = [folder / "latest.json", folder / f"{stamp}-{doc['mode']}.json"]
    for path in paths:
        path.write_text(text)
    return paths
