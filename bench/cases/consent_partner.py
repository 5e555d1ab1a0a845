"""Consent revoked on profile → partner refused by partner-share (waits for those routes).

When the routes exist, the measurement to add here: with a partner that sees a
customer, PUT /customers/{id}/consents with `granted: false` and poll
GET /partner/v1/customers/{ref} until it is refused; p50/p99 of that delay over
many customers, target p99 ≤ 1 s (DESIGN.md: "a revoked consent stops disclosure
within a second"), baseline the raw produce→getmany round trip.
"""

from bench.cases.pending import when_available
from bench.core import Context, Result

NAME = "consent-partner"
REQUIRED = {
    "profile": ["/customers/{id}/consents"],
    "partner-share": ["/partners", "/partner/v1/customers/{ref}"],
}


async def run(ctx: Context) -> list[Result]:
    return await when_available("consent revoked → partner refused", REQUIRED, None, ctx)
