"""html_to_text: visible words, paragraphs as line breaks, never an exception."""

from __future__ import annotations

import random

import pytest

from monitor.core.html import html_to_text, tidy_whitespace


@pytest.mark.parametrize(
    ("html", "expected"),
    [
        ("<p>Hello <b>world</b></p>", "Hello world"),
        ("<p>One</p><p>Two</p>", "One\n\nTwo"),
        ("<p>One</p>\n\n   \n<p>Two</p>", "One\n\nTwo"),
        ("line one<br>line two<br/>line three", "line one\nline two\nline three"),
        ("para one<br><br><br>para two", "para one\n\npara two"),
        ("<ul>\n  <li>first</li>\n  <li>second</li>\n</ul>", "first\nsecond"),
        ("<div>a</div><div>b</div>", "a\nb"),
        ("<h1>Title</h1><p>Body</p>", "Title\n\nBody"),
        ("<h3>Sub</h3>text", "Sub\n\ntext"),
        ("<blockquote>quoted</blockquote>after", "quoted\n\nafter"),
        ("<table><tr><td>a</td><td>b</td></tr><tr><td>c</td></tr></table>", "a b\nc"),
        ("<figure><img src=x><figcaption>Caption</figcaption></figure>Next", "Caption\n\nNext"),
        ("<section><header>Head</header><article>Art</article></section>", "Head\n\nArt"),
        ("<pre>line 1\nline 2</pre>", "line 1\nline 2"),
        ("AT&amp;T &lt;tag&gt; &eacute;t&eacute; &#8217; &#x2014;", "AT&T <tag> été ’ —"),
        ("a&nbsp;&nbsp;&nbsp;b", "a b"),
        ("many     spaces\tand\ttabs", "many spaces and tabs"),
    ],
)
def test_structure(html: str, expected: str) -> None:
    assert html_to_text(html) == expected


@pytest.mark.parametrize("tag", ["script", "style", "noscript", "template", "svg", "iframe"])
def test_invisible_elements_dropped(tag: str) -> None:
    html = f"<p>before</p><{tag}>hidden <b>stuff</b></{tag}><p>after</p>"
    assert html_to_text(html) == "before\n\nafter"


def test_nested_svg_dropped_entirely() -> None:
    assert html_to_text("a<svg><g><svg><text>x</text></svg><text>y</text></g></svg>b") == "ab"


def test_script_with_markup_inside() -> None:
    html = "<p>x</p><script>if (a < b) { document.write('<p>no</p>') }</script><p>y</p>"
    assert html_to_text(html) == "x\n\ny"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Plain text stays", "Plain text stays"),
        ("Keeps\nits lines\n\n\n\nand paragraphs", "Keeps\nits lines\n\nand paragraphs"),
        ("  spaced    out  \n  lines  ", "spaced out\nlines"),
        ("Fish &amp; chips", "Fish & chips"),
        ("1 < 2 and 3 > 2", "1 < 2 and 3 > 2"),
        ("", ""),
        ("   \n\t ", ""),
    ],
)
def test_plain_text_passes_through(text: str, expected: str) -> None:
    assert html_to_text(text) == expected


@pytest.mark.parametrize(
    "html",
    [
        "<p>unclosed <b>bold",
        "<div><p>mis</div>nested</p>",
        "<a href='x",
        "<!-- never closed",
        "<![CDATA[x",
        "<![if !supportLists]>x<![endif]>",
        "<!DOCTYPE",
        "</",
        "<?xml",
        "<scr<script>ipt>alert(1)</script>",
        "<p>&bogus; &#xZZ; &#99999999;</p>",
        "<<<>>>",
    ],
)
def test_malformed_html_never_raises(html: str) -> None:
    assert isinstance(html_to_text(html), str)


def test_malformed_keeps_the_words() -> None:
    assert html_to_text("<p>unclosed <b>bold") == "unclosed bold"
    assert html_to_text("<div><p>mis</div>nested</p>") == "mis\nnested"


def test_random_markup_never_raises() -> None:
    rng = random.Random(20260103)
    alphabet = "<>/!?[]-=&;#x'\" \npabscript"
    for _ in range(3000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 40)))
        assert isinstance(html_to_text(text), str)


def test_tidy_whitespace() -> None:
    assert tidy_whitespace(" a  b \r\n\r\n\r\n c\rd ") == "a b\n\nc\nd"
