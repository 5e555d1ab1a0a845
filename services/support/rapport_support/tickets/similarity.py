"""Similar tickets: TF-IDF and cosine over a ticket's subject, category and description."""

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass

from rapport_support.settings import Settings
from rapport_support.tickets.models import SimilarTicket, SupportTicket, TicketSummary


@dataclass(frozen=True)
class Match:
    key: str
    score: float


def most_similar(
    query: str,
    documents: Sequence[tuple[str, str]],
    *,
    limit: int,
    min_score: float,
) -> list[Match]:
    """The documents (key, text) closest to `query` by TF-IDF cosine, best first."""
    texts = [text for _, text in documents]
    if not texts or not query.strip():
        return []
    # Imported at the first search, not at start: scikit-learn is most of the service's
    # import time (11 s of CPU on a busy machine), and a replica should be ready fast.
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.metrics.pairwise import linear_kernel

    vectorizer = TfidfVectorizer(
        strip_accents="unicode", lowercase=True, stop_words="english", ngram_range=(1, 2)
    )
    try:
        matrix = vectorizer.fit_transform([*texts, query])
    except ValueError:  # nothing but stop words anywhere
        return []
    # Rows are L2-normalised, so the dot product is the cosine.
    scores = linear_kernel(matrix[-1], matrix[:-1]).ravel()
    ranked = sorted(range(len(texts)), key=lambda index: scores[index], reverse=True)
    return [
        Match(documents[index][0], round(float(scores[index]), 4))
        for index in ranked[:limit]
        # A zero score shares no term at all: never "similar", whatever the threshold.
        if scores[index] > 0 and scores[index] >= min_score
    ]


def ticket_text(ticket: SupportTicket) -> str:
    """What a ticket is compared by: its subject, category and description."""
    return " ".join(part for part in (ticket.subject, ticket.category, ticket.description) if part)


async def rank_similar(
    settings: Settings, query: str, candidates: list[SupportTicket], limit: int
) -> list[SimilarTicket]:
    """The candidates closest to `query` in text, best first."""
    by_id = {ticket.id: ticket for ticket in candidates}
    documents = [(ticket.id, ticket_text(ticket)) for ticket in candidates]
    # TF-IDF over thousands of tickets is CPU work; keep the event loop free meanwhile.
    matches = await asyncio.to_thread(
        most_similar,
        query,
        documents,
        limit=limit,
        min_score=settings.similarity_min_score,
    )
    return [
        SimilarTicket(ticket=TicketSummary.model_validate(by_id[match.key]), score=match.score)
        for match in matches
    ]
