"""The replay source on the real seeds/ files, and on small files written per test."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from monitor.errors import SourceError
from monitor.models import Item
from monitor.sources.base import FetchResult, Source
from monitor.sources.replay import ReplaySource, item_from_json, item_from_text, read_items

ROOT = Path(__file__).resolve().parents[2]
SEEDS = ROOT / "seeds"
FEEDS = ROOT / "tests" / "data" / "feeds"
MTIME = datetime(2026, 2, 1, 12, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def seeds() -> dict[str, Item]:
    items, problems = read_items(SEEDS, "seeds")
    assert problems == []
    return {item.path[:3]: item for item in items if item.path}


def text_item(content: str, name: str = "a.txt") -> Item:
    return item_from_text(name, content, "replay", MTIME)


# --- seeds/ ------------------------------------------------------------------------------


def test_seeds_are_read_in_order(seeds: dict[str, Item]) -> None:
    items, _ = read_items(SEEDS, "seeds")
    names = sorted(p.name for p in SEEDS.iterdir())
    assert [item.path for item in items] == names
    assert [item.guid for item in items] == names
    assert all(item.source == "seeds" for item in items)
    assert all(re.fullmatch(r"seeds:[0-9a-f]{16}", item.id) for item in items)
    assert len({item.id for item in items}) == 5


def test_seed_001_markdown(seeds: dict[str, Item]) -> None:
    item = seeds["001"]
    assert item.title == "Russia Demands Release of Maduro After U.S. Military Strikes Venezuela"
    assert item.url == (
        "https://www.themoscowtimes.com/2026/01/03/"
        "russia-demands-release-of-maduro-after-us-military-strikes-venezuela-a91602"
    )
    assert item.published == datetime(2026, 1, 3, tzinfo=UTC)
    assert "the Foreign Ministry said in a statement" in item.text
    assert "Lavrov spoke by phone" in item.text
    assert "Related article: Moscow Risks Losing a Key Ally" in item.text
    assert "](#)" not in item.text
    assert "**" not in item.text
    assert "Original url" not in item.text
    assert "themoscowtimes.com" not in item.text
    assert "#" not in item.text
    assert item.title not in item.text  # the heading is not repeated
    assert "\n\n" in item.text  # paragraphs kept
    assert item.text.endswith("after the operation to capture Maduro.")


def test_seed_002_headline(seeds: dict[str, Item]) -> None:
    item = seeds["002"]
    assert item.title.startswith("How Russia Condemned")
    assert item.title.endswith("Release of Maduro and Spouse")
    assert not item.text.startswith("How Russia Condemned")
    assert item.text.startswith("The Russian Federation has issued")
    assert item.url is None


def test_seed_003_headline_after_section_label(seeds: dict[str, Item]) -> None:
    item = seeds["003"]
    assert item.title == (
        "Russia says US military strikes on Venezuela 'deeply concerning, condemnable'"
    )
    assert item.published == datetime(2026, 1, 3, tzinfo=UTC)  # 03.01.2026 is day.month.year
    assert item.title not in item.text  # printed twice on the page, dropped both times
    assert "Americas, Asia - Pacific" in item.text


def test_seed_004_date_with_time(seeds: dict[str, Item]) -> None:
    item = seeds["004"]
    assert item.title == "Lavrov holds phone call with Venezuelan vice president"
    assert item.published == datetime(2026, 1, 3, 17, 10, tzinfo=UTC)
    assert item.text.startswith("3 Jan, 2026 17:10")


def test_seed_000_without_date_or_headline(seeds: dict[str, Item]) -> None:
    item = seeds["000"]
    path = next(SEEDS.glob("000_*"))
    assert item.published == datetime.fromtimestamp(path.stat().st_mtime, UTC)
    assert item.title.endswith("…")
    assert len(item.title) <= 120
    lead = item.title[:-1]
    assert item.text.startswith(lead)
    assert item.text[len(lead)] == " "  # cut at a word boundary
    # "U.S. custody" does not end the lead sentence: the title runs past it.
    assert item.title.startswith("Russia’s Foreign Ministry on Saturday called for the release")
    assert item.text.startswith("Russia’s Foreign Ministry on Saturday")
    assert item.url is None


def test_ids_are_stable_and_follow_content(tmp_path: Path) -> None:
    source = next(SEEDS.glob("004_*"))
    copy = tmp_path / source.name
    shutil.copyfile(source, copy)
    first, _ = read_items(tmp_path, "seeds")
    again, _ = read_items(tmp_path, "seeds")
    assert [i.id for i in first] == [i.id for i in again]
    content = source.read_text(encoding="utf-8")
    expected = hashlib.sha256(f"{source.name}\0{content}".encode()).hexdigest()[:16]
    assert first[0].id == f"seeds:{expected}"

    copy.write_text(content + "\nA correction was appended.\n", encoding="utf-8")
    edited, _ = read_items(tmp_path, "seeds")
    assert edited[0].id != first[0].id
    assert edited[0].guid == first[0].guid == source.name


async def test_fetch_seeds() -> None:
    source: Source = ReplaySource("seeds", SEEDS)
    assert source.id == "seeds"
    result = await source.fetch({})
    assert isinstance(result, FetchResult)
    assert result.ok
    assert result.source == "seeds"
    assert len(result.items) == 5
    assert result.problems == ()


async def test_fetch_missing_path(tmp_path: Path) -> None:
    result = await ReplaySource("gone", tmp_path / "nowhere").fetch({})
    assert not result.ok
    assert result.error is not None
    assert "nowhere" in result.error
    assert result.items == ()


def test_read_items_missing_path_raises(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="no such file"):
        read_items(tmp_path / "nowhere", "x")


# --- directories and files ---------------------------------------------------------------


async def test_bad_file_is_skipped_and_reported(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("First story has a headline\n\nBody one.", encoding="utf-8")
    (tmp_path / "b.json").write_text('{"title": "broken", ', encoding="utf-8")
    (tmp_path / "c.md").write_text("# Third story\n\nBody three.", encoding="utf-8")
    (tmp_path / "d.txt").write_bytes(b"Latin-1 \xe9t\xe9 text")
    (tmp_path / "e.txt").write_text("   \n\n", encoding="utf-8")
    result = await ReplaySource("dir", tmp_path).fetch({})
    assert result.ok
    assert [item.title for item in result.items] == ["First story has a headline", "Third story"]
    assert len(result.problems) == 3
    bad_json, not_utf8, empty = result.problems
    assert bad_json.startswith(f"{tmp_path / 'b.json'}: invalid JSON")
    assert not_utf8.startswith(f"{tmp_path / 'd.txt'}: not UTF-8")
    assert empty == f"{tmp_path / 'e.txt'}: no text"


def test_unreadable_file_is_a_problem(tmp_path: Path) -> None:
    (tmp_path / "good.txt").write_text("A good story with words", encoding="utf-8")
    (tmp_path / "dangling.txt").symlink_to(tmp_path / "missing-target.txt")
    items, problems = read_items(tmp_path, "r")
    assert [item.path for item in items] == ["good.txt"]
    assert problems == [f"{tmp_path / 'dangling.txt'}: No such file or directory"]


def test_walks_recursively_skipping_hidden_and_unknown(tmp_path: Path) -> None:
    (tmp_path / "z.txt").write_text("Z story with enough words", encoding="utf-8")
    (tmp_path / "sub" / "deeper").mkdir(parents=True)
    (tmp_path / "sub" / "b.md").write_text("# B", encoding="utf-8")
    (tmp_path / "sub" / "deeper" / "a.TXT").write_text("# A", encoding="utf-8")
    (tmp_path / ".hidden.txt").write_text("# hidden", encoding="utf-8")
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "x.txt").write_text("# git", encoding="utf-8")
    (tmp_path / "image.png").write_bytes(b"\x89PNG")
    (tmp_path / "notes.docx").write_bytes(b"PK")
    items, problems = read_items(tmp_path, "r")
    assert problems == []
    assert [item.path for item in items] == ["sub/b.md", "sub/deeper/a.TXT", "z.txt"]
    assert [item.guid for item in items] == ["sub/b.md", "sub/deeper/a.TXT", "z.txt"]


def test_single_file(tmp_path: Path) -> None:
    path = tmp_path / "one.md"
    path.write_text("# Only one\n\nText.", encoding="utf-8")
    items, problems = read_items(path, "r")
    assert problems == []
    assert [(item.path, item.title, item.text) for item in items] == [
        ("one.md", "Only one", "Text.")
    ]


def test_single_file_of_unknown_type_is_a_problem(tmp_path: Path) -> None:
    path = tmp_path / "one.docx"
    path.write_bytes(b"PK")
    items, problems = read_items(path, "r")
    assert items == []
    assert len(problems) == 1
    assert problems[0].startswith(f"{path}: unsupported file type")


def test_feed_files(tmp_path: Path) -> None:
    for name in ("rss2.xml", "atom.xml", "rdf.rdf", "malformed.rss", "feed.json"):
        shutil.copyfile(FEEDS / name, tmp_path / name)
    (tmp_path / "sub").mkdir()
    shutil.copyfile(FEEDS / "atom.xml", tmp_path / "sub" / "feed.atom")
    items, problems = read_items(tmp_path, "feeds")
    assert problems == []
    counts = [("atom.xml", 2), ("feed.json", 3), ("malformed.rss", 2), ("rdf.rdf", 1)]
    counts += [("rss2.xml", 3), ("sub/feed.atom", 2)]
    assert [item.path for item in items] == [name for name, n in counts for _ in range(n)]
    assert all(item.source == "feeds" for item in items)
    assert items[2].title == "Maduro flown to New York"  # the JSON Feed was read as a feed


def test_json_items(tmp_path: Path) -> None:
    objects = [
        {"id": "w-1", "title": "Wire one", "body": "<p>Body <b>one</b></p>", "source": "evil"},
        "not an object",
        {"title": "Bad date", "text": "x", "published": "yesterday-ish"},
        {"text": "No title here. The lead sentence becomes it.", "link": "https://e.org/3"},
        {"summary": ""},
    ]
    (tmp_path / "wire.json").write_text(json.dumps(objects), encoding="utf-8")
    (tmp_path / "single.json").write_text(json.dumps({"title": "Alone"}), encoding="utf-8")
    items, problems = read_items(tmp_path, "wire")
    assert [item.title for item in items] == [
        "Alone",
        "Wire one",
        "No title here",
    ]
    assert items[1].source == "wire"
    assert items[1].text == "Body one"
    assert items[2].url == "https://e.org/3"
    assert items[2].guid == "wire.json#3"
    wire = tmp_path / "wire.json"
    assert problems == [
        f"{wire}: item 1: not a JSON object",
        f"{wire}: item 2: invalid date 'yesterday-ish'",
        f"{wire}: item 4: no title and no text",
    ]


def test_json_top_level_must_be_object_or_list(tmp_path: Path) -> None:
    (tmp_path / "n.json").write_text("42", encoding="utf-8")
    items, problems = read_items(tmp_path, "r")
    assert items == []
    assert problems == [f"{tmp_path / 'n.json'}: expected a JSON object or a list of objects"]


# --- item_from_json ----------------------------------------------------------------------


def test_item_from_json_fields() -> None:
    obj = {
        "guid": "abc",
        "title": "Lavrov &amp; Rodríguez",
        "content": "<p>First.</p><p>Second.</p>",
        "summary": "ignored, content comes first",
        "url": "https://e.org/1",
        "date": "2026-01-03T17:10:00+03:00",
        "source": "someone-else",
        "authors": ["Ann", "Bob"],
        "tags": ["x", "y"],
        "language": "en",
    }
    item = item_from_json(obj, "wire", "w.json", 0, MTIME)
    assert item.guid == "abc"
    assert item.title == "Lavrov & Rodríguez"
    assert item.text == "First.\n\nSecond."
    assert item.url == "https://e.org/1"
    assert item.published == datetime(2026, 1, 3, 14, 10, tzinfo=UTC)
    assert item.source == "wire"
    assert item.authors == ("Ann", "Bob")
    assert item.tags == ("x", "y")
    assert item.language == "en"
    assert item.path == "w.json"
    assert re.fullmatch(r"wire:[0-9a-f]{16}", item.id)
    assert item_from_json(obj, "wire", "w.json", 0, MTIME).id == item.id
    assert item_from_json({**obj, "title": "Changed"}, "wire", "w.json", 0, MTIME).id != item.id


def test_item_from_json_dates() -> None:
    stamp = item_from_json({"title": "T", "published": 1767460200}, "s", "f", 0, MTIME)
    assert stamp.published == datetime(2026, 1, 3, 17, 10, tzinfo=UTC)
    for bad in (10**30, "3rd of Jan", ["2026-01-03"]):
        with pytest.raises(SourceError, match="item 0: invalid date"):
            item_from_json({"title": "T", "date": bad}, "s", "f", 0, MTIME)


def test_item_from_json_defaults() -> None:
    item = item_from_json({"title": "T", "author": "Solo"}, "s", "f.json", 2, MTIME)
    assert item.authors == ("Solo",)
    assert item.published == MTIME
    assert item.guid == "f.json#2"
    assert item.text == ""
    naive = item_from_json({"title": "T", "published": "2026-01-03 10:00"}, "s", "f", 0, MTIME)
    assert naive.published == datetime(2026, 1, 3, 10, 0, tzinfo=UTC)


# --- item_from_text ----------------------------------------------------------------------


def test_markdown_reduced_to_words() -> None:
    content = "\n".join(
        [
            "# The **Big** Story",
            "",
            "Intro with a [link](https://e.org/a) and ![a photo](img.jpg) here.",
            "Some **bold**, __strong__, *em* and _em too_ words; snake_case and 2*3*4 stay.",
            "## A subheading",
            "See <https://e.org/auto> for more. `code` too.",
            "",
            "Original url: <https://e.org/story>",
        ]
    )
    item = text_item(content, "story.md")
    assert item.title == "The Big Story"
    assert item.url == "https://e.org/story"
    assert item.text == (
        "Intro with a link and a photo here.\n"
        "Some bold, strong, em and em too words; snake_case and 2*3*4 stay.\n"
        "A subheading\n"
        "See for more. code too."
    )


@pytest.mark.parametrize(
    ("content", "url"),
    [
        ("Some text here.\nOriginal url: https://e.org/bare", "https://e.org/bare"),
        ("Some text here.\nOriginal URL:\n\n\nhttps://e.org/next-line", "https://e.org/next-line"),
        ("Some text here.\nOriginal url:\n<https://e.org/angle>", "https://e.org/angle"),
        ("Some text here.\nOriginal url: https://e.org/wiki/A_(b).", "https://e.org/wiki/A_(b)"),
        ("Some text here.\nOriginal url: (https://e.org/x).", "https://e.org/x"),
        ("Some text here.\nNo original link.", None),
    ],
)
def test_original_url(content: str, url: str | None) -> None:
    item = text_item(content)
    assert item.url == url
    assert item.text in ("Some text here.", "Some text here.\nNo original link.")


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("January 03, 2026", datetime(2026, 1, 3, tzinfo=UTC)),
        ("Published Jan 3, 2026", datetime(2026, 1, 3, tzinfo=UTC)),
        ("Sept. 30, 2025 at 5:05 pm", datetime(2025, 9, 30, 17, 5, tzinfo=UTC)),
        ("By Reporter | 03.01.2026 - Update : 04.01.2026", datetime(2026, 1, 3, tzinfo=UTC)),
        ("3 Jan, 2026 17:10 / Updated 4 hours ago", datetime(2026, 1, 3, 17, 10, tzinfo=UTC)),
        ("12 December 2025", datetime(2025, 12, 12, tzinfo=UTC)),
        ("2026-01-03", datetime(2026, 1, 3, tzinfo=UTC)),
        ("Posted 2026-01-03T17:10:00Z", datetime(2026, 1, 3, 17, 10, tzinfo=UTC)),
        ("2026-01-03T17:10:00+03:00", datetime(2026, 1, 3, 14, 10, tzinfo=UTC)),
        ("2026-01-03 08:30", datetime(2026, 1, 3, 8, 30, tzinfo=UTC)),
        ("31.02.2026 is not a date", None),
        ("Version 1.2.3.2026 of the tool", None),
        ("No date on this line", None),
    ],
)
def test_dates(line: str, expected: datetime | None) -> None:
    item = text_item(f"A headline with four words\n{line}\n\nBody text.")
    assert item.published == (expected or MTIME)


def test_first_date_wins() -> None:
    item = text_item("Headline of this test story\nUpdated 2026-01-05, first 4 Jan 2026\n3.1.2026")
    assert item.published == datetime(2026, 1, 5, tzinfo=UTC)


def test_date_after_fifteen_lines_is_ignored() -> None:
    filler = "\n".join(f"Line {n} of filler." for n in range(20))
    item = text_item(f"{filler}\nJanuary 3, 2026")
    assert item.published == MTIME


def test_mtime_is_returned_in_utc() -> None:
    local = datetime(2026, 1, 3, 12, 0, tzinfo=timezone(timedelta(hours=3)))
    item = item_from_text("a.txt", "Just a line.", "s", local)
    assert item.published == datetime(2026, 1, 3, 9, 0, tzinfo=UTC)
    assert item.published.tzinfo == UTC


@pytest.mark.parametrize(
    ("content", "title"),
    [
        ("Short line\nFour words in headline\nBody.", "Four words in headline"),
        ("This line ends with a period.\nBody.", "This line ends with a period"),
        ("A line that ends like a label:\nBody.", "A line that ends like a label:"),
        ("Mr. Smith went to Washington. He left.", "Mr. Smith went to Washington"),
        ("U.S. officials met on Monday. Then left.", "U.S. officials met on Monday"),
        ("The U.S. Senate voted. Then it adjourned.", "The U.S. Senate voted"),
        ("Donald J. Trump spoke. Then left.", "Donald J. Trump spoke"),
        ("Is this a question? Yes.", "Is this a question?"),
        ("one two three", "one two three"),
    ],
)
def test_titles(content: str, title: str) -> None:
    assert text_item(content).title == title


def test_long_lead_sentence_is_cut_at_a_word() -> None:
    sentence = " ".join(["word"] * 40) + "."
    title = text_item(sentence).title
    assert title == " ".join(["word"] * 24) + "…"
    assert len(title) <= 120


def test_headline_line_is_removed_from_text() -> None:
    item = text_item("A headline of some words\n\nThe body.\nA headline of some words")
    assert item.title == "A headline of some words"
    assert item.text == "The body."
