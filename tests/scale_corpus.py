"""Articles for the scale-out test: each one its own story, each matching one rule.

Every article is written in words of its own (invented words, none shared with any other
article), plus one common English word that the rule looks for. With no distinctive word in
common, no two articles are duplicates (level 2) or the same story (level 3), so every article
must raise exactly one alert. Variants of an article test the other outcomes: a follow-up (the
same words in another order: the same story, other wording), a republication (the same text at
another URL: a duplicate) and a re-sent entry (another id, the same URL: seen before).
"""

from __future__ import annotations

import json
import os
import random
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

MARKER = "report"
"""The word every article carries and the rule matches. So common in English that it weighs
almost nothing in an article's story terms: it cannot pull two articles into one story."""

WORDS_PER_ARTICLE = 48  # above the 40 words under which the title joins the fingerprint
TITLE_WORDS = 6
_CONSONANTS = "bcdfgklmnprstvz"
_VOWELS = "aeiou"


@dataclass(frozen=True, slots=True)
class Article:
    """One replay file's content: a JSON item object."""

    key: str
    title: str
    text: str
    url: str
    published: str
    words: tuple[str, ...]  # the invented words, in text order

    def to_json(self) -> dict[str, Any]:
        """The file's content; ``words`` stay out (the reader sees only title and text)."""
        return {
            "id": self.key,
            "title": self.title,
            "text": self.text,
            "url": self.url,
            "published": self.published,
            "language": "en",
        }


class Vocabulary:
    """Invented words, never the same one twice."""

    def __init__(self, rng: random.Random) -> None:
        self._rng = rng
        self._used: set[str] = {MARKER}

    def word(self) -> str:
        while True:
            syllables = self._rng.randint(3, 4)
            word = "".join(
                self._rng.choice(_CONSONANTS) + self._rng.choice(_VOWELS) for _ in range(syllables)
            )
            if word not in self._used:
                self._used.add(word)
                return word


def _sentence(words: list[str]) -> str:
    return " ".join(words).capitalize() + "."


def _compose(key: str, words: list[str], url: str, published: str) -> Article:
    """Title: the first words; text: all of them with the marker inside, on one line (a line
    repeated across articles would be taken for boilerplate)."""
    middle = len(words) // 2
    text = _sentence(words[:middle]) + f" A {MARKER} on " + " ".join(words[middle:]) + "."
    title = _sentence(words[:TITLE_WORDS]).rstrip(".")
    return Article(key, title, text, url, published, tuple(words))


def articles(count: int, *, seed: int, published: str) -> list[Article]:
    """``count`` articles with disjoint vocabularies (reproducible from ``seed``)."""
    vocabulary = Vocabulary(random.Random(seed))
    return [
        _compose(
            f"scale-{n:05d}",
            [vocabulary.word() for _ in range(WORDS_PER_ARTICLE)],
            f"https://news.example/scale/{n:05d}",
            published,
        )
        for n in range(count)
    ]


def follow_up(article: Article, key: str, seed: int) -> Article:
    """The same event in other words: the same vocabulary shuffled, at its own URL."""
    words = article.words
    title = set(words[:TITLE_WORDS])
    rng = random.Random(seed)
    head = rng.sample(sorted(title), len(title))
    rest = rng.sample(sorted(set(words) - title), len(words) - len(title))
    return _compose(key, head + rest, f"{article.url}/update", article.published)


def republication(article: Article, key: str) -> Article:
    """The same text under another id and URL, as a syndicating site would publish it."""
    return replace(article, key=key, url=f"{article.url}/syndicated")


def resent(article: Article, key: str) -> Article:
    """The same entry again under another id: its URL gives it away (level 1, seen)."""
    return replace(article, key=key)


def write(directory: Path, found: list[Article]) -> None:
    """One JSON file per article, each appearing whole at once (renamed into place), so a
    poll that reads the directory meanwhile never sees half a file."""
    directory.mkdir(parents=True, exist_ok=True)
    for article in found:
        staged = directory / f".{article.key}.json"
        staged.write_text(json.dumps(article.to_json(), ensure_ascii=False), encoding="utf-8")
        os.replace(staged, directory / f"{article.key}.json")
