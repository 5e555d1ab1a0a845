"""Sales' pipeline report (by stage and owner) over 100,000 opportunities: target ≤ 1 s.

The opportunities (90 % open, over the default pipeline's stages, 50 owners, two
currencies) are written straight into a migrated sales database; the app answers
`GET /reports/pipeline` in process, through its real routes, session and SQL. The
baseline, for scale, is a bare `SELECT count(*)` over the same table.
"""

import random
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import httpx
from sqlalchemy import func, insert, select

from bench.core import Context, Result, p50_p99, value_at_most
from rapport_sales.main import create_app
from rapport_sales.opportunities.models import SalesOpportunity
from rapport_sales.settings import Settings

NAME = "sales-pipeline"
OPPORTUNITIES = 100_000
TARGET_MS = 1000.0
CALLS = 10
STAGES = ("lead", "qualified", "proposal", "negotiation")
PROBABILITY = {"lead": "0.1", "qualified": "0.25", "proposal": "0.5", "negotiation": "0.75"}
TOKEN = "bench-sales-token-0123456789abcdef0123"


def _rows(count: int) -> list[dict[str, object]]:
    rng = random.Random(5)
    now = datetime.now(UTC)
    rows = []
    for n in range(count):
        status = "open" if rng.random() < 0.9 else rng.choice(("won", "lost"))
        stage = rng.choice(STAGES) if status == "open" else status
        created = now - timedelta(days=rng.randrange(1, 365))
        rows.append(
            {
                "id": f"opp-{n:06d}",
                "pipeline_id": "default",
                "account_id": f"acc-{n % 5000}",
                "customer_id": None,
                "name": f"Deal {n}",
                "owner": f"rep-{n % 50}",
                "amount": Decimal(rng.randrange(100, 100_000)),
                "currency": "EUR" if n % 4 else "USD",
                "expected_close_date": (now + timedelta(days=rng.randrange(0, 365))).date(),
                "stage": stage,
                "probability": Decimal(PROBABILITY.get(stage, "1" if status == "won" else "0")),
                "status": status,
                "source": None,
                "products": [],
                "lost_reason": None,
                "order_id": None,
                "created_at": created,
                "updated_at": created,
                "closed_at": None if status == "open" else now,
            }
        )
    return rows


async def _case(ctx: Context, kind: str) -> Result:
    settings = Settings(
        database_url=await ctx.database(kind, "sales_pipeline"),
        api_token=TOKEN,
        kafka=ctx.kafka_settings("sales-pipeline"),
        consume_events=False,
    )
    app = create_app(settings)
    table = SalesOpportunity.__table__  # type: ignore[attr-defined]
    async with app.router.lifespan_context(app):
        engine = app.state.runtime.engine
        rows = _rows(OPPORTUNITIES)
        async with engine.begin() as connection:
            for start in range(0, len(rows), 5000):
                await connection.execute(insert(table), rows[start : start + 5000])
            if kind == "postgresql":
                await connection.exec_driver_sql("ANALYZE sales_opportunities")
        transport = httpx.ASGITransport(app=app)
        headers = {"Authorization": f"Bearer {TOKEN}"}
        async with httpx.AsyncClient(transport=transport, base_url="http://sales") as http:
            timings = []
            for _ in range(CALLS):
                started = time.perf_counter()
                reply = await http.get("/reports/pipeline", headers=headers)
                timings.append((time.perf_counter() - started) * 1000)
                assert reply.status_code == 200, reply.text
            counted = sum(stage["count"] for stage in reply.json()["stages"])
        started = time.perf_counter()
        async with engine.connect() as connection:
            await connection.execute(select(func.count()).select_from(table))
        count_ms = (time.perf_counter() - started) * 1000
    p50, p99 = p50_p99(timings)
    return value_at_most(
        NAME,
        f"ms p99 pipeline report ({kind})",
        p99,
        count_ms,
        TARGET_MS,
        baseline_name="SELECT count(*) of the table",
        notes=f"{OPPORTUNITIES} opportunities, {counted} open, {CALLS} calls",
        details={"p50_ms": round(p50, 1)},
    )


async def run(ctx: Context) -> list[Result]:
    return [await _case(ctx, kind) for kind in await ctx.database_kinds()]
