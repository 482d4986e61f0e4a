"""How common a word is in ordinary text (wordfreq), for weighting what a story is about."""

from __future__ import annotations

from functools import cache, lru_cache

from wordfreq import available_languages, zipf_frequency

from monitor.core.stories import Background

FALLBACK = "en"


@cache
def _languages() -> frozenset[str]:
    return frozenset(available_languages())


def background_for(language: str | None) -> Background:
    """The Zipf frequency function of ``language`` (its first two letters), else English's."""
    code = (language or FALLBACK).split("-")[0].split("_")[0].lower()
    return _frequency(code if code in _languages() else FALLBACK)


@cache
def _frequency(language: str) -> Background:
    @lru_cache(maxsize=200_000)
    def zipf(word: str) -> float:
        return float(zipf_frequency(word, language))

    return zipf
