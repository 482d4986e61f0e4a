"""Normalization: one fold for rules and articles, with token offsets back into the original."""

from __future__ import annotations

import random

import pytest

from monitor.core.text import (
    Token,
    _tokens_in_bulk,
    _tokens_one_by_one,
    fold,
    fold_char,
    highlight_runs,
    normalize,
    snippets,
    tokenize,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # NFKC: ligatures, fullwidth and other compatibility forms.
        ("ﬁnance", "finance"),
        ("ﬂight ﬀ ﬃ ﬆ", "flight ff ffi st"),
        ("ＦＵＬＬ ｗｉｄｔｈ", "full width"),
        ("ＦＵＬＬ－ｗｉｄｔｈ", "full width"),
        ("１２３", "123"),
        ("𝐁𝐨𝐥𝐝 Ⓐ ℌ ĳ ǅ ㎏", "bold a h ij dz kg"),
        # Case folding.
        ("Straße", "strasse"),
        ("STRASSE", "strasse"),
        ("MiXeD CaSe", "mixed case"),
        # Diacritics, precomposed and combining.
        ("Rodríguez", "rodriguez"),
        ("Rodri\u0301guez", "rodriguez"),
        ("Łódź", "lodz"),
        ("İstanbul", "istanbul"),
        ("ıstanbul", "istanbul"),
        ("Crème Brûlée", "creme brulee"),
        ("Nicolás Maduro", "nicolas maduro"),
        ("Delcy Eloína Rodríguez Gómez", "delcy eloina rodriguez gomez"),
        ("Ørsted Đoković Ħamrun", "orsted dokovic hamrun"),
        ("Æsir Œuvre Þór", "aesir oeuvre thor"),
        ("naïve café", "naive cafe"),
        ("e\u0301te\u0301", "ete"),
        ("a\u0301\u0308\u0327b", "ab"),
        # Typographic quotes and dashes are punctuation like their ASCII forms.
        ("“Hello,” she said — ‘bye’", "hello she said bye"),
        ("«Bonjour» „Hallo“", "bonjour hallo"),
        ("2025–2026", "2025 2026"),
        ("Security–Council", "security council"),
        # Dotted abbreviations join.
        ("U.S.", "us"),
        ("u.s.", "us"),
        ("U.S. custody", "us custody"),
        ("U.S.A", "usa"),
        ("U.S.A.", "usa"),
        ("e.g.", "eg"),
        ("i.e., this", "ie this"),
        ("U.S.-led", "us led"),
        ("the U.N. said", "the un said"),
        # Possessive 's is dropped, with either apostrophe.
        ("Russia’s", "russia"),
        ("Russia's", "russia"),
        ("Russia‘s ministry", "russia ministry"),
        ("Lavrov’s telephone conversation", "lavrov telephone conversation"),
        ("Venezuela's largest", "venezuela largest"),
        ("U.S.’s role", "us role"),
        ("U.S.'s role", "us role"),
        # Hyphenated words split; punctuation separates.
        ("well-known", "well known"),
        ("SECURITY-COUNCIL", "security council"),
        ("securitycouncil", "securitycouncil"),
        ("pre-release", "pre release"),
        ("and/or", "and or"),
        ("hello,world;again", "hello world again"),
        # Digits are tokens of their own kind.
        ("COVID-19", "covid 19"),
        ("2026", "2026"),
        ("F-16s", "f 16s"),
        ("3.5 million", "3 5 million"),
        ("$1,000", "1 000"),
        ("Jan. 3, 2026", "jan 3 2026"),
        # Non-Latin scripts and symbols.
        ("北京 announced", "北 京 announced"),  # a character of an unspaced script: one token
        ("Москва́", "москва"),
        ("Ελλάδα", "ελλαδα"),
        ("😀 Maduro 🇻🇪", "maduro"),
        # Invisible formatting characters do not split words.
        ("secu\u00adrity", "security"),
        # Nothing to keep.
        ("", ""),
        ("   ", ""),
        ("— … ! ?", ""),
    ],
)
def test_normalize(text: str, expected: str) -> None:
    assert normalize(text) == expected


@pytest.mark.parametrize(
    ("char", "expected"),
    [
        ("’", "'"),
        ("‘", "'"),
        ("ʼ", "'"),
        ("“", '"'),
        ("”", '"'),
        ("«", '"'),
        ("–", "-"),
        ("—", "-"),
        ("−", "-"),
        ("‑", "-"),
        ("\u0301", ""),
        ("ß", "ss"),
        ("ﬁ", "fi"),
        ("Ａ", "a"),
        ("É", "e"),
        ("ł", "l"),
        ("Ø", "o"),
        ("İ", "i"),
        ("a", "a"),
        ("7", "7"),
    ],
)
def test_fold_char(char: str, expected: str) -> None:
    assert fold_char(char) == expected


def test_fold_keeps_punctuation_and_maps_back() -> None:
    original = "“Rodríguez” — it’s"
    folded = fold(original)
    assert folded.text == '"rodriguez" - it\'s'
    assert folded.span(1, 10) == (1, 10)
    assert original[slice(*folded.span(1, 10))] == "Rodríguez"


def test_fold_of_ascii_text_is_lower_case_with_identity_offsets() -> None:
    folded = fold("Hello, World")
    assert folded.text == "hello, world"
    assert folded.span(7, 12) == (7, 12)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Hi there", [Token("hi", 0, 2), Token("there", 3, 8)]),
        ("the U.S. said", [Token("the", 0, 3), Token("us", 4, 8), Token("said", 9, 13)]),
        ("Russia’s ministry", [Token("russia", 0, 6), Token("ministry", 9, 17)]),
        ("Rodri\u0301guez x", [Token("rodriguez", 0, 10), Token("x", 11, 12)]),
        ("ﬁnal ﬂow", [Token("final", 0, 4), Token("flow", 5, 8)]),
        ("Straße", [Token("strasse", 0, 6)]),
        ("😀 Maduro", [Token("maduro", 2, 8)]),
    ],
)
def test_token_offsets(text: str, expected: list[Token]) -> None:
    assert tokenize(text).as_list() == expected


def _assert_offsets_map_back(text: str) -> list[Token]:
    """Every token's span slices the original text to exactly the characters it came from."""
    tokens = tokenize(text).as_list()
    previous_end = 0
    for token in tokens:
        piece = text[token.start : token.end]
        assert piece, (text, token)
        assert piece == piece.strip(), (text, token, piece)
        assert normalize(piece) == token.word, (text, token, piece)
        assert token.start >= previous_end, (text, tokens)
        previous_end = token.end
    return tokens


@pytest.mark.parametrize(
    "text",
    [
        "Hello, world! This is plain ASCII.",
        "  leading and trailing spaces  ",
        "Nicolás Maduro and Delcy Rodríguez Gómez",
        "Nicola\u0301s Maduro and Delcy Rodri\u0301guez Go\u0301mez\u0301",
        "cafe\u0301\u0301 e\u0301te\u0301 x\u0301",
        "\u0301leading mark",
        "ﬁnal ﬂow ﬃx ﬆop",
        "ﬀ\u0301 ﬁ\u0308n",
        "ＦＵＬＬ－ｗｉｄｔｈ ＴＥＸＴ １２３",
        "Straße STRASSE ßß",
        "😀 Maduro 🇻🇪 said 👩‍👩‍👧 ok👍🏽",
        "北京 announced 中文字 and 日本語",
        "İstanbul’da Łódź Ørsted Æsir",
        "the U.S. said U.S.A. e.g. i.e.",
        "Russia’s U.S.'s O’Brien’s",
        "“Maduro” — released… «now»",
        "Ｍaduro's ﬁnal—ＵＳ’s\u0301 re\u0301le\u0301ase",
        "COVID-19 F-16s 3.5 $1,000",
        "𝐁𝐨𝐥𝐝 Ⓐ ℌ ĳ ǅ ㎏",
    ],
)
def test_offsets_map_back_to_original(text: str) -> None:
    assert _assert_offsets_map_back(text)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a ½ cup", [("a", "a"), ("12", "½"), ("cup", "cup")]),
        ("1½ cups", [("112", "1½"), ("cups", "cups")]),
        ("℅ the desk", [("co", "℅"), ("the", "the"), ("desk", "desk")]),
    ],
)
def test_one_character_that_expands_to_several_words_is_one_token(
    text: str, expected: list[tuple[str, str]]
) -> None:
    """NFKC writes ½ as 1⁄2 and ℅ as c/o; their pieces are one token of the one character, so
    offsets never overlap (a highlight never covers a character twice)."""
    assert [(t.word, text[t.start : t.end]) for t in tokenize(text).as_list()] == expected


_ALPHABET = [
    *"abcdefXYZ019",
    *" .,-'’“”—/()!?",
    *"éüñçÅŁłøßæœİıÉ",
    "\u0301",
    "\u0308",
    "\u0327",
    *"ﬁﬂﬀﬃＡｂ１",
    "😀",
    "中",
    "文",
    " ",
    "\n",
    "U.S.",
    "e.g.",
    "’s",
    "'s",
]


def test_offsets_map_back_on_generated_text() -> None:
    rng = random.Random(0)
    seen = 0
    for _ in range(500):
        text = "".join(rng.choice(_ALPHABET) for _ in range(rng.randint(0, 30)))
        seen += len(_assert_offsets_map_back(text))
    assert seen > 1000  # the generator produced real words, not only punctuation


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("हिन्दी समाचार", "हिन्दी समाचार"),  # vowel signs and virama belong to the word
        ("ภาษาไทย", "ภ า ษ า ไ ท ย"),  # unspaced: a letter with its marks is a token
        ("Rodri\u0301guez", "rodriguez"),  # a combining accent is still removed
    ],
)
def test_marks_of_other_scripts_stay_in_their_words(text: str, expected: str) -> None:
    assert normalize(text) == expected


def test_snippets_cut_at_words_and_point_at_the_matches() -> None:
    text = " ".join(f"word{n}" for n in range(200))
    start = text.index("word100")
    [piece] = snippets(text, [(start, start + 7)], width=60)
    assert piece.cut_before and piece.cut_after
    assert not piece.text.startswith(" ") and not piece.text.endswith(" ")
    [(a, b)] = piece.highlights
    assert piece.text[a:b] == "word100"
    assert text[piece.start : piece.start + len(piece.text)] == piece.text


def test_snippets_merge_close_matches_and_keep_at_most_the_limit() -> None:
    text = " ".join(f"w{n}" for n in range(1000))
    spans = [
        (text.index(f" w{n} ") + 1, text.index(f" w{n} ") + 1 + len(f"w{n}"))
        for n in (10, 12, 300, 600, 900)
    ]
    pieces = snippets(text, spans, width=40, limit=3)
    assert len(pieces) == 3
    assert [pieces[0].text[a:b] for a, b in pieces[0].highlights] == ["w10", "w12"]


def test_snippets_without_matches_give_the_beginning() -> None:
    [piece] = snippets("A short text.", [])
    assert piece.text == "A short text." and piece.highlights == ()


@pytest.mark.parametrize(
    ("spans", "expected"),
    [
        ([], [("Maduro was released", False)]),
        ([(0, 6)], [("Maduro", True), (" was released", False)]),
        ([(11, 19), (0, 6), (4, 9)], [("Maduro wa", True), ("s ", False), ("released", True)]),
        ([(-5, 3), (15, 99)], [("Mad", True), ("uro was rele", False), ("ased", True)]),
        ([(6, 6)], [("Maduro was released", False)]),
    ],
)
def test_highlight_runs_merge_and_clip(
    spans: list[tuple[int, int]], expected: list[tuple[str, bool]]
) -> None:
    assert highlight_runs("Maduro was released", spans) == expected


@pytest.mark.parametrize(
    ("text", "words"),
    [
        # Unspaced scripts: one token per character (with its marks), offsets exact.
        ("台湾地区", ["台", "湾", "地", "区"]),
        ("東京で地震", ["東", "京", "で", "地", "震"]),
        ("iPhone台湾", ["iphone", "台", "湾"]),
        ("ภาษาไทย", ["ภ", "า", "ษ", "า", "ไ", "ท", "ย"]),
        ("ភាសាខ្មែរ", ["ភា", "សា", "ខ្", "មែ", "រ"]),
        # Hangul is written with spaces: its words stay whole.
        ("대한민국 서울", ["대한민국", "서울"]),
        # Arabic: the article and one-letter prefixes come off while three letters remain.
        ("بيروت وبيروت والبيروت ببيروت", ["يروت", "يروت", "يروت", "يروت"]),
        ("لبنان بلبنان للبيت البيت", ["نان", "نان", "بيت", "بيت"]),
        ("في غزة بغزة", ["في", "غزة", "غزة"]),
        ("أحمد احمد", ["احمد", "احمد"]),  # the hamza mark is dropped
    ],
)
def test_every_script_tokenizes_into_what_rules_can_match(text: str, words: list[str]) -> None:
    tokens = tokenize(text)
    assert list(tokens.words) == words
    shown = [text[s:e] for s, e in zip(tokens.starts, tokens.ends, strict=True)]
    assert "".join(shown) == text.replace(" ", "")  # offsets cover every character once


def test_tokens_found_in_bulk_are_those_found_one_by_one() -> None:
    """``tokenize`` takes each step over all of a text's matches at once, and falls back to a
    match at a time where a folded character became two tokens or Arabic words lose their
    prefixes: both ways give the same tokens, offsets included."""
    rng = random.Random(1)
    pieces = [*_ALPHABET, "U.S.", "u.s.a", "a.b", "’s", "'s", "¼", "台湾", "بيروت", "e\u0301", "\n"]
    bulk = 0
    for _ in range(3000):
        text = "".join(rng.choice(pieces) for _ in range(rng.randint(0, 20)))
        folded = fold(text)
        one_by_one = _tokens_one_by_one(folded)
        assert tokenize(text) == one_by_one, text
        found = _tokens_in_bulk(folded)
        if found is not None and "بيروت" not in text:
            bulk += 1
            assert found == one_by_one, text
    assert bulk > 2000  # most texts take the bulk way
