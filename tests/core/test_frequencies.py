"""Which language an item is in, and what that costs (a child process measures its peak)."""

from __future__ import annotations

import textwrap

import pytest

from monitor.core.frequencies import guess_language
from monitor.core.text import tokenize
from tests.children import run_child


@pytest.mark.parametrize(
    ("text", "language"),
    [
        ("The president said on Monday that the talks would resume next week", "en"),
        (
            "El presidente dijo el lunes que las conversaciones se reanudarán la próxima semana",
            "es",
        ),
        ("Der Präsident sagte am Montag, dass die Gespräche über die Lage weitergehen", "de"),
        (
            "Le président a déclaré lundi que les discussions avec les syndicats reprendront",
            "fr",
        ),
        ("Il presidente ha detto lunedì che i colloqui riprenderanno la prossima settimana", "it"),
        ("Президент заявил в понедельник, что переговоры возобновятся на следующей неделе", "ru"),
        ("Президент заявив у понеділок, що переговори відновляться наступного тижня", "uk"),
        (
            "Cumhurbaşkanı görüşmelerin gelecek hafta başlayacağını söyledi ve bu çok önemli",
            "tr",
        ),
        ("12 34 56", "en"),
        ("", "en"),
    ],
)
def test_the_language_is_guessed_from_its_function_words(text: str, language: str) -> None:
    assert guess_language(tokenize(text).words) == language


CHILD = textwrap.dedent(
    """
    import json, resource
    from monitor.core.frequencies import background_for, language_code
    from monitor.core.stories import StreamFrequency, evidence, weigh
    from monitor.core.text import tokenize
    texts = [
        "The mayor said on Tuesday that the bridge would reopen next month after repairs.",
        "Der Bürgermeister sagte am Dienstag, dass die Brücke nächsten Monat wieder öffnet.",
    ]
    found = []
    for text in texts:
        code = language_code(None, tokenize(text).words)
        weigh(evidence("Bridge", text), StreamFrequency(), background_for(code))
        found.append(code)
    print(json.dumps({"languages": found,
                      "max_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
    """
)


@pytest.mark.peak_memory  # a child inherits the peak of the process that forks it
def test_items_without_a_language_load_only_the_tables_they_need() -> None:
    """Guessing loads no frequency table; two languages cost two tables, not twelve."""
    outcome = run_child(CHILD)
    assert outcome["languages"] == ["en", "de"]
    assert outcome["max_rss_mb"] < 300, outcome
