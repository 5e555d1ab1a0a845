"""Chart data for the pages: one JSON shape console.js hands to Chart.js, and the same
numbers as table rows beside each chart."""

import json
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Chart:
    """A chart and the table of its numbers."""

    kind: str  # Chart.js type: line, bar
    labels: list[str]
    datasets: list[dict[str, Any]] = field(default_factory=list)

    def add(self, label: str, values: list[float | None], **style: Any) -> "Chart":
        self.datasets.append({"label": label, "data": values, **style})
        return self

    def json(self) -> str:
        """What the canvas's data-chart attribute carries."""
        return json.dumps(
            {"type": self.kind, "labels": self.labels, "datasets": self.datasets},
            default=float,
        )

    def rows(self) -> list[list[Any]]:
        """One row per label: the label, then each dataset's value."""
        return [
            [label, *(dataset["data"][i] for dataset in self.datasets)]
            for i, label in enumerate(self.labels)
        ]

    @property
    def columns(self) -> list[str]:
        return [str(dataset["label"]) for dataset in self.datasets]
