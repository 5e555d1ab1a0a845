"""The bench cannot rot: one cheap case runs in quick mode and reports a well-formed row.

No timing is asserted: numbers on a shared machine are noise, the shape is not.
"""

import json
from pathlib import Path

import pytest

from bench import report
from bench.__main__ import main, selected
from bench.cases import CASES, outbox_relay
from bench.cases.tracing import interpret
from bench.core import Context, Result, Sizes, ratio_at_least, skipped, value_at_most

TINY = Sizes.quick().with_overrides(relay_events=300, warmup=50, repeats=1, max_seconds=30.0)


class TestOutboxRelayCase:
    async def test_reports_a_value_its_baseline_and_their_ratio(self, tmp_path: Path) -> None:
        async with Context(TINY, workdir=tmp_path, use_postgres=False) as ctx:
            [result] = await outbox_relay.run(ctx)

        assert result.case == "outbox relay (sqlite)"
        assert result.metric == "events/s"
        assert result.value is not None and result.value > 0
        assert result.baseline is not None and result.baseline > 0
        assert result.ratio == pytest.approx(result.value / result.baseline)
        assert result.status in ("PASS", "FAIL")
        assert result.target == "≥ 0.5×"
        assert result.details["events"] == 300
        assert result.details["message_bytes"] > 500
        assert json.loads(json.dumps(result.to_json()))["ratio"] == pytest.approx(result.ratio)


class TestRegistry:
    def test_every_case_has_a_unique_name_and_a_run(self) -> None:
        names = [case.NAME for case in CASES]
        assert len(names) == len(set(names))
        assert all(callable(case.run) and case.__doc__ for case in CASES)

    def test_only_selects_by_name(self) -> None:
        assert [case.NAME for case in selected("outbox-relay")] == ["outbox-relay"]
        with pytest.raises(SystemExit):
            selected("no-such-case")

    def test_list_exits_zero(self, capsys: pytest.CaptureFixture[str]) -> None:
        assert main(["--list"]) == 0
        assert "outbox-relay" in capsys.readouterr().out


class TestReport:
    def test_verdicts_follow_the_targets(self) -> None:
        assert ratio_at_least("c", "x/s", 60, 100, 0.5, baseline_name="b").status == "PASS"
        assert ratio_at_least("c", "x/s", 40, 100, 0.5, baseline_name="b").status == "FAIL"
        assert value_at_most("c", "ms", 30, 5, 20, baseline_name="b").status == "FAIL"

    def test_table_and_json_hold_every_row(self, tmp_path: Path) -> None:
        results: list[Result] = [
            ratio_at_least("relay", "events/s", 60, 100, 0.5, baseline_name="raw"),
            skipped("later", "not available yet"),
        ]
        text = report.table(results)
        assert "| relay | 60.0 events/s | 100 events/s (raw) | 0.6× | ≥ 0.5× | PASS |" in text
        assert "| later | — | — | — | — | SKIP | not available yet |" in text
        doc = report.document(
            results,
            mode="quick",
            sizes={},
            started=report.datetime.now(report.UTC),
            machine_before=report.machine(),
        )
        latest, stamped = report.write(doc, tmp_path)
        assert json.loads(latest.read_text()) == json.loads(stamped.read_text())
        assert [row["status"] for row in json.loads(latest.read_text())["results"]] == [
            "PASS",
            "SKIP",
        ]

    def test_tracing_results_are_read_as_cost(self) -> None:
        assert interpret({"on": 90, "off": 100}).status == "PASS"
        assert interpret({"on": 80, "off": 100}).status == "FAIL"
        assert interpret({"cost": 12.0}).status == "PASS"
        assert interpret({"something": 1}).status == "INFO"
