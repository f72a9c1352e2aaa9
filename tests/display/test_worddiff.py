"""batches.display.worddiff: the changed words of two texts, escaped, with long unchanged stretches shortened."""

from __future__ import annotations

from batches.display.worddiff import GAP, MAX_CHARS, MAX_SHOWN, word_diff


def test_changed_words_are_marked_on_each_side() -> None:
    a, b = word_diff("The quick brown fox", "The quick red fox")

    assert (a, b) == ("The quick <del>brown</del> fox", "The quick <ins>red</ins> fox")


def test_markup_in_the_texts_is_escaped() -> None:
    a, b = word_diff("<script>x()</script> old", "<script>x()</script> new")

    assert a == "&lt;script&gt;x()&lt;/script&gt; <del>old</del>" and "<script>" not in b


def test_a_long_unchanged_stretch_keeps_only_the_words_beside_the_change() -> None:
    before = (
        "It was the best of times, it was the worst of times, it was the age of wisdom, it was the age of foolishness"
    )
    after = ", it was the spring of hope, it was the winter of despair, we had everything before us, we had nothing."

    a, b = word_diff(before + " old" + after, before + " new" + after)

    assert a.startswith(GAP) and a.endswith(GAP) and "<del>old</del>" in a and len(a) < 80
    assert "<ins>new</ins>" in b


def test_what_is_shown_and_compared_stays_bounded_whatever_the_texts() -> None:
    a, b = word_diff("a " * 100_000, "b " * 100_000)

    assert len(a) <= MAX_SHOWN + MAX_CHARS and a.endswith(GAP) and len(b) <= MAX_SHOWN + MAX_CHARS
