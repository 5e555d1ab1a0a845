"""Text analysis: sentiment of mentions (VADER) and similar tickets (TF-IDF and cosine)."""

import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

from rapport_support.models import MentionKind, Sentiment

# VADER's own thresholds on the compound score.
NEGATIVE_BELOW = -0.05
POSITIVE_ABOVE = 0.05
QUESTION_START = re.compile(
    r"^\s*(how|why|what|when|where|which|who|can|could|would|will|does|do|did|is|are|"
    r"should|anyone|any)\b",
    re.IGNORECASE,
)


@lru_cache(maxsize=1)
def _analyzer() -> SentimentIntensityAnalyzer:
    # Loads the lexicon shipped in the package once per process.
    return SentimentIntensityAnalyzer()


@dataclass(frozen=True)
class SentimentScore:
    label: Sentiment
    compound: float


def sentiment(text: str) -> SentimentScore:
    """Positive, neutral or negative, with VADER's compound score in [-1, 1]."""
    compound = float(_analyzer().polarity_scores(text)["compound"])
    if compound <= NEGATIVE_BELOW:
        return SentimentScore("negative", compound)
    if compound >= POSITIVE_ABOVE:
        return SentimentScore("positive", compound)
    return SentimentScore("neutral", compound)


def mention_kind(text: str, label: Sentiment) -> MentionKind:
    """A negative mention is a complaint, else a question if it asks one, else praise or other."""
    if label == "negative":
        return "complaint"
    if "?" in text or QUESTION_START.match(text):
        return "question"
    return "praise" if label == "positive" else "other"


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
