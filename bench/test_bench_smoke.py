"""The bench cannot rot: one cheap case runs in quick mode and reports a well-formed row.

No timing is asserted: numbers on a shared machine are noise, the shape is not.
"""

import json
from pathlib import Path

import pytest

from bench import report, wrk
from bench.__main__ import main, selected
from bench.cases import CASES, outbox_relay
from bench.cases.tracing import interpret
from bench.core import Context, Result, Sizes, ratio_at_least, skipped, value_at_most
from bench.http_load import BareApp

# Opens a database or a server of its own: not a unit test.
pytestmark = pytest.mark.integration

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


WRK_OUTPUT = """Running 1s test @ http://127.0.0.1:38123
  1 threads and 2 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     5.67ms   14.87ms   1.08s    93.86%
    Req/Sec     2.56k     2.76k    8.56k    80.00%
  Latency Distribution
     50%  282.00us
     75%    4.06ms
     90%   12.47ms
     99%   87.79ms
  2604 requests in 1.08s, 785.78KB read
  Socket errors: connect 0, read 2, write 0, timeout 1
  Non-2xx or 3xx responses: 1302
Requests/sec:   2403.78
Transfer/sec:    725.36KB
"""


class TestWrk:
    def test_reads_rate_percentiles_and_errors_from_wrk_output(self) -> None:
        load = wrk.parse(WRK_OUTPUT, connections=2)
        assert (load.requests, load.seconds, load.rate) == (2604, 1.08, 2403.78)
        assert (load.p50_ms, load.p99_ms, load.max_ms) == pytest.approx((0.282, 87.79, 1080.0))
        assert load.errors == 1302 + 3

    def test_refuses_output_without_a_result(self) -> None:
        with pytest.raises(RuntimeError):
            wrk.parse("unable to connect to 127.0.0.1:1 Connection refused\n", connections=1)

    async def test_drives_an_app_over_every_path_with_the_token(self, tmp_path: Path) -> None:
        bare = BareApp(tmp_path)
        await bare.start()
        try:
            paths = ["/customers/a", "/customers/b"]
            full = await wrk.run(bare.url, paths, workdir=tmp_path, seconds=1, connections=2)
            paced = await wrk.run(
                bare.url, paths, workdir=tmp_path, seconds=1, connections=2, delay_ms=200
            )
            missing = await wrk.run(bare.url, ["/nope"], workdir=tmp_path, seconds=1, connections=1)
        finally:
            bare.stop()
        assert full.requests > 20 and full.errors == 0
        assert 0 < full.p50_ms <= full.p99_ms
        # Two connections pausing 200 ms on average offer about 10 requests a second.
        assert paced.errors == 0 and paced.rate < 25 < full.rate
        assert missing.errors == missing.requests > 0
        assert "Authorization" in wrk.script(paths) and '"/customers/b"' in wrk.script(paths)

    async def test_counts_replies_holding_a_marker_and_prints_the_p95(self, tmp_path: Path) -> None:
        bare = BareApp(tmp_path)
        await bare.start()
        try:
            paths = ["/customers/a", "/customers/marked"]
            load = await wrk.run(
                bare.url, paths, workdir=tmp_path, seconds=1, connections=2, marker='"marked"'
            )
        finally:
            bare.stop()
        # Requests cycle over the two paths: half the replies carry the marked id.
        assert load.requests > 20 and abs(load.marked - load.requests / 2) <= 2
        assert load.p95_ms is not None and load.p50_ms <= load.p95_ms <= load.p99_ms

    def test_each_request_carries_the_next_header_set(self) -> None:
        lua = wrk.script(
            ["/p"], token=None, header_sets=[{"Cookie": "s=1"}, {"Cookie": "s=2"}], delay_ms=50
        )

        assert '{["Cookie"]="s=1"},{["Cookie"]="s=2"}' in lua
        assert "header_sets[(n % #header_sets) + 1]" in lua
        assert f"math.min(-50.000 * math.log(1 - math.random()), {wrk.MAX_PAUSE_MS})" in lua
