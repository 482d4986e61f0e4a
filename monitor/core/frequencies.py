"""How common a word is in ordinary text (wordfreq), for weighting what a story is about."""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache, lru_cache

from wordfreq import available_languages, zipf_frequency

from monitor.core.stories import Background

FALLBACK = "en"


@cache
def _languages() -> frozenset[str]:
    return frozenset(available_languages())


# Languages a feed is likely to be in when it does not say; the guess picks the one in which the
# text's words are most common.
GUESSED = ("en", "es", "de", "fr", "it", "pt", "nl", "sv", "pl", "ru", "uk", "tr")
GUESS_WORDS = 60


def language_code(language: str | None, words: Sequence[str] = ()) -> str:
    """The two-letter code of ``language`` when wordfreq knows it; when the item does not say,
    the language guessed from ``words``, else English."""
    code = (language or "").split("-")[0].split("_")[0].lower()
    if code not in _languages():
        code = guess_language(words) if words else FALLBACK
    return code


def background_for(language: str | None, words: Sequence[str] = ()) -> Background:
    """The Zipf frequency function of ``language`` (see ``language_code``)."""
    return _frequency(language_code(language, words))


def guess_language(words: Sequence[str]) -> str:
    """The language whose ordinary words these are: the highest mean Zipf frequency."""
    sample = [w for w in words[:GUESS_WORDS] if not w.isdigit()]
    if not sample:
        return FALLBACK
    scores = {lang: sum(map(_frequency(lang), sample)) for lang in GUESSED}
    return max(scores, key=lambda lang: (scores[lang], lang == FALLBACK))


@cache
def _frequency(language: str) -> Background:
    @lru_cache(maxsize=200_000)
    def zipf(word: str) -> float:
        return float(zipf_frequency(word, language))

    return zipf
