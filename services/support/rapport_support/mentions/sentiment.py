"""Sentiment of mentions (VADER) and what kind of mention each is."""

import re
from dataclasses import dataclass
from functools import lru_cache

from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

from rapport_support.mentions.models import MentionKind, Sentiment

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
