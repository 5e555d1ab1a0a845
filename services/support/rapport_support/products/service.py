"""Known issues of a product model: its most frequent ticket categories, their usual
resolutions, and the earlier tickets closest to a new problem."""

from collections import Counter, defaultdict

from rapport_support.errors import InvalidRequest
from rapport_support.products.models import CategoryIssues, KnownIssues, ResolutionCount, model_key
from rapport_support.settings import Settings
from rapport_support.tickets.models import OPEN_STATUSES, SupportTicket
from rapport_support.tickets.similarity import rank_similar
from rapport_support.unit_of_work import SupportUnitOfWork

TOP_RESOLUTIONS = 3
UNCATEGORISED = "uncategorised"


def _resolution_key(resolution: str) -> str:
    return " ".join(resolution.lower().split()).rstrip(".")


async def known_issues(
    uow: SupportUnitOfWork,
    settings: Settings,
    product_model: str,
    query: str | None = None,
    limit: int = 5,
) -> KnownIssues:
    """The model's most frequent ticket categories with their usual resolutions."""
    key = model_key(product_model)
    if key is None:
        raise InvalidRequest("product model must not be blank")
    tickets = [
        ticket
        for ticket in await uow.tickets.tickets_for_model(key, settings.similarity_corpus_limit)
        if ticket.duplicate_of is None
    ]
    by_category: dict[str, list[SupportTicket]] = defaultdict(list)
    for ticket in tickets:
        by_category[(ticket.category or UNCATEGORISED).lower()].append(ticket)
    categories = []
    for category, members in by_category.items():
        resolved = [t for t in members if t.resolution and t.status in ("resolved", "closed")]
        counts = Counter(_resolution_key(t.resolution or "") for t in resolved)
        # Show each resolution as an agent first wrote it.
        wording: dict[str, str] = {}
        for ticket in sorted(resolved, key=lambda t: t.created_at):
            wording.setdefault(_resolution_key(ticket.resolution or ""), ticket.resolution or "")
        categories.append(
            CategoryIssues(
                category=category,
                tickets=len(members),
                share=round(len(members) / len(tickets), 3),
                resolved=len(resolved),
                resolutions=[
                    ResolutionCount(resolution=wording[res], tickets=count)
                    for res, count in counts.most_common(TOP_RESOLUTIONS)
                ],
            )
        )
    categories.sort(key=lambda issue: (-issue.tickets, issue.category))
    similar = await rank_similar(settings, query, tickets, limit) if query else []
    return KnownIssues(
        product_model=tickets[0].product_model or product_model if tickets else product_model,
        tickets=len(tickets),
        open_tickets=sum(ticket.status in OPEN_STATUSES for ticket in tickets),
        categories=categories[:limit],
        similar=similar,
    )
