"""Consent revoked on profile → partner refused by partner-share: p50/p99 of that delay.

A partner is registered on partner-share (slice: contact, its rate limit raised so
polling is never throttled); customers are created on profile and grant it
partner_sharing consent through PUT /customers/{id}/consents; their refs come from
the partner match API (SHA-256 of the normalised e-mail), and every ref answers 200
on GET /partner/v1/customers/{ref}. Then, one customer at a time, profile revokes the
consent and the partner API is polled every 10 ms until it answers 404; the delay
counts from just before the revoking PUT. Target p99 ≤ 1 s (DESIGN.md: "a revoked
consent stops disclosure within a second"). Baseline, same run: the partner API's own
GET p99; the notes add a raw aiokafka produce→getmany round trip at the revocation
rate, the floor of the event leg a revocation travels.
"""

import asyncio
import hashlib
import time
from typing import Any

import httpx

from bench import kafka_raw
from bench.core import Context, Result, p50_p99, value_at_most, wait_until
from bench.http_load import client
from bench.services import new_customer, running_stack

NAME = "consent-partner"
P99_TARGET_MS = 1000.0
POLL_S = 0.01
REFUSAL_TIMEOUT_S = 10.0
SLICES = ["contact"]
MATCH_CHUNK = 1000  # the most hashes one match request takes


async def run(ctx: Context) -> list[Result]:
    return [await measure(ctx, kind) for kind in await ctx.database_kinds()]


async def _register_partner(http: httpx.AsyncClient, url: str) -> tuple[str, dict[str, str]]:
    """A partner for contact data; returns its id and the header carrying its API key."""
    reply = await http.post(
        f"{url}/partners",
        json={
            "name": "Bench partner",
            "industry": "media",
            "slices": SLICES,
            "purposes": ["audience_matching"],
            "rate_limit_per_second": 10_000,
            "rate_limit_burst": 100_000,
        },
    )
    _expect(reply, 201, "POST /partners")
    body = reply.json()
    return str(body["id"]), {"X-API-Key": str(body["api_key"])}


def _expect(reply: httpx.Response, status: int, what: str) -> None:
    if reply.status_code != status:
        raise RuntimeError(f"{what} answered {reply.status_code}: {reply.text[:300]}")


async def _create_customers(
    http: httpx.AsyncClient, url: str, count: int, concurrency: int
) -> dict[str, str]:
    """`count` customers, `concurrency` at a time; their ids by e-mail."""
    created: dict[str, str] = {}
    pending = iter(range(count))

    async def worker() -> None:
        for _ in pending:
            customer = new_customer("consent")
            reply = await http.post(f"{url}/customers", json=customer)
            _expect(reply, 201, "POST /customers")
            created[customer["email"]] = str(reply.json()["id"])

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return created


async def _set_consent(
    http: httpx.AsyncClient, url: str, customer_id: str, partner_id: str, *, granted: bool
) -> None:
    reply = await http.put(
        f"{url}/customers/{customer_id}/consents",
        json={
            "purpose": "partner_sharing",
            "partner_id": partner_id,
            "slices": SLICES if granted else [],
            "granted": granted,
        },
    )
    _expect(reply, 200, "PUT /customers/{id}/consents")


def _digest(email: str) -> str:
    return hashlib.sha256(email.strip().lower().encode()).hexdigest()


async def _refs(
    http: httpx.AsyncClient, url: str, key: dict[str, str], emails: dict[str, str], timeout: float
) -> dict[str, str]:
    """Customer id → the partner's ref, once the match API finds every consenting customer."""
    by_digest = {_digest(email): customer_id for email, customer_id in emails.items()}
    digests = list(by_digest)
    refs: dict[str, str] = {}

    async def all_matched() -> bool:
        for first in range(0, len(digests), MATCH_CHUNK):
            reply = await http.post(
                f"{url}/partner/v1/match",
                json={"emails": digests[first : first + MATCH_CHUNK]},
                headers=key,
            )
            _expect(reply, 200, "POST /partner/v1/match")
            for match in reply.json()["matches"]:
                refs[by_digest[match["hash"]]] = match["ref"]
        return len(refs) == len(digests)

    await wait_until(all_matched, timeout=timeout, what="every consent matched", interval=0.1)
    return refs


async def _get_latencies(
    http: httpx.AsyncClient, url: str, key: dict[str, str], refs: list[str], rounds: int
) -> list[float]:
    """Seconds per GET /partner/v1/customers/{ref}, one after another; each must answer 200."""
    latencies = []
    for _ in range(rounds):
        for ref in refs:
            began = time.perf_counter()
            reply = await http.get(f"{url}/partner/v1/customers/{ref}", headers=key)
            latencies.append(time.perf_counter() - began)
            _expect(reply, 200, "GET /partner/v1/customers/{ref} of a consenting customer")
    return latencies


async def _revoke_until_refused(
    http: httpx.AsyncClient,
    urls: dict[str, str],
    key: dict[str, str],
    partner_id: str,
    customer_id: str,
    ref: str,
) -> tuple[float, float]:
    """Seconds from just before the revoking PUT until the partner API answers 404,
    and seconds the PUT itself took."""
    began = time.perf_counter()
    await _set_consent(http, urls["profile"], customer_id, partner_id, granted=False)
    put = time.perf_counter() - began

    async def refused() -> bool:
        reply = await http.get(f"{urls['partner-share']}/partner/v1/customers/{ref}", headers=key)
        if reply.status_code not in (200, 404):
            _expect(reply, 404, "GET /partner/v1/customers/{ref} after revocation")
        return reply.status_code == 404

    done = await wait_until(
        refused, timeout=REFUSAL_TIMEOUT_S, what=f"refusal of {ref}", interval=POLL_S
    )
    return done - began, put


async def measure(ctx: Context, kind: str) -> Result:
    sizes = ctx.sizes
    count = max(2, sizes.revocations)
    names = ["profile", "partner-share"]
    async with running_stack(ctx, names, kind, f"consent-{kind}") as (stack, *_):
        urls = {name: stack.url(name) for name in names}
        async with client(sizes.concurrency) as http:
            partner_id, key = await _register_partner(http, urls["partner-share"])
            emails = await _create_customers(http, urls["profile"], count, sizes.concurrency)
            for customer_id in emails.values():
                await _set_consent(http, urls["profile"], customer_id, partner_id, granted=True)
            refs = await _refs(http, urls["partner-share"], key, emails, 2 * sizes.max_seconds)
            gets = await _get_latencies(http, urls["partner-share"], key, list(refs.values()), 2)

            delays, puts = [], []
            began = time.perf_counter()
            for customer_id, ref in refs.items():
                delay, put = await _revoke_until_refused(
                    http, urls, key, partner_id, customer_id, ref
                )
                delays.append(delay * 1000)
                puts.append(put * 1000)
            rate = count / (time.perf_counter() - began)

    raw_settings = await ctx.topic(f"consent-raw-{kind}")
    # The raw messages go at the revocation rate: their pacing alone takes count / rate.
    raw = await kafka_raw.round_trip_latencies(
        raw_settings, rate, count, warmup=20, size=1024, timeout=sizes.max_seconds + count / rate
    )
    return _result(kind, delays, puts, [g * 1000 for g in gets], [r * 1000 for r in raw], rate)


def _result(
    kind: str,
    delays: list[float],
    puts: list[float],
    gets: list[float],
    raw: list[float],
    rate: float,
) -> Result:
    p50, p99 = p50_p99(delays)
    put_p50, put_p99 = p50_p99(puts)
    get_p50, get_p99 = p50_p99(gets)
    raw_p50, raw_p99 = p50_p99(raw)
    details: dict[str, Any] = {
        "revocations": len(delays),
        "p50_ms": p50,
        "p99_ms": p99,
        "max_ms": max(delays),
        "put_p50_ms": put_p50,
        "put_p99_ms": put_p99,
        "get_p50_ms": get_p50,
        "get_p99_ms": get_p99,
        "gets": len(gets),
        "raw_p50_ms": raw_p50,
        "raw_p99_ms": raw_p99,
        "rate": rate,
    }
    return value_at_most(
        f"consent revoked → partner refused p99 ({kind})",
        "ms",
        p99,
        get_p99,
        P99_TARGET_MS,
        baseline_name="partner API GET p99",
        notes=(
            f"p50 {p50:.0f} ms, max {max(delays):.0f} ms; {len(delays)} revocations one at a "
            f"time, polled every {POLL_S * 1000:.0f} ms; revoking PUT p50 {put_p50:.0f} ms; "
            f"GET p50 {get_p50:.1f} ms; raw produce→getmany p50 {raw_p50:.0f} / "
            f"p99 {raw_p99:.0f} ms at the same rate"
        ),
        details=details,
    )
