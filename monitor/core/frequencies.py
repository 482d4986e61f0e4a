"""How common a word is in ordinary text (wordfreq), for weighting what a story is about, and
which language an item is in when it does not say (stop-word profiles: a few hundred KB).

A language's frequency table (tens of MB) is loaded the first time a word of that language is
weighed, and only then; guessing a language never loads one.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache, lru_cache

from stop_words import get_stop_words
from wordfreq import available_languages, zipf_frequency

from monitor.core.stories import Background
from monitor.core.text import tokenize

FALLBACK = "en"


@cache
def _languages() -> frozenset[str]:
    return frozenset(available_languages())


# Languages a feed is likely to be in when it does not say; the guess picks the one whose
# function words (the stop-words package's lists) make up most of the text's first words.
GUESSED = (
    "en", "es", "de", "fr", "it", "pt", "nl", "sv", "pl", "ru", "uk", "tr",
    "ar", "el", "he", "fa", "bg",
)  # fmt: skip
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
    """The language most of whose function words these are (ties and no evidence: English).
    A word counts for each language it is a function word of, shared equally among them: "la"
    says less than "und"."""
    sample = [w for w in words[:GUESS_WORDS] if not w.isdigit()]
    if not sample:
        return FALLBACK
    # Each language's score adds its words' shares in the sample's order (the same sums as
    # one pass per language), a word looked up once.
    scores: dict[str, float] = dict.fromkeys(GUESSED, 0)
    owners = _owners()
    for word in sample:
        found = owners.get(word)
        if found is not None:
            share, languages = found
            for lang in languages:
                scores[lang] += share
    return max(scores, key=lambda lang: (scores[lang], lang == FALLBACK))


@cache
def _owners() -> dict[str, tuple[float, tuple[str, ...]]]:
    """Each function word's share (1 / the languages it is one of) and those languages."""
    profiles, shared = _profiles(), _shared()
    return {
        word: (1.0 / count, tuple(lang for lang in GUESSED if word in profiles[lang]))
        for word, count in shared.items()
    }


@cache
def _shared() -> dict[str, int]:
    """In how many of the guessed languages each function word is one."""
    counts: dict[str, int] = {}
    for profile in _profiles().values():
        for word in profile:
            counts[word] = counts.get(word, 0) + 1
    return counts


@cache
def _profiles() -> dict[str, frozenset[str]]:
    """Each language's function words, normalized as text is (accents folded, lower case)."""
    return {
        lang: frozenset(word for entry in get_stop_words(lang) for word in tokenize(entry).words)
        for lang in GUESSED
    }


@cache
def _frequency(language: str) -> Background:
    @lru_cache(maxsize=200_000)
    def zipf(word: str) -> float:
        return float(zipf_frequency(word, language))

    return zipf
