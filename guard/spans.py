"""Where a judged message's highest-scoring window lies, in the text as it was sent.

A guard judges a view of the text (guard.views: hidden characters removed, NFKC, or read
as spaces), so the windows it cuts are stretches of the view. `map_back` finds the same
stretch in the original: the shortest one whose view covers the window.

    original "How do I make a pipe\\u200b bomb?"   view "How do I make a pipe bomb?"
    window (16, 25) of the view ("pipe bomb")  ->  (16, 26) of the original ("pipe\\u200b bomb")

It reads the view of each prefix of the original, so it needs only that a longer prefix
never reads shorter, which holds for removing characters and for NFKC. Whatever the view
does, the result is a span inside the original (0 <= start <= end <= len(original)).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from guard.normalize import guard_text
from guard.verdict import Verdict
from guard.views import View


def map_back(span: tuple[int, int], original: str, read: Callable[[str], str]) -> tuple[int, int]:
    """The stretch of `original` whose reading `read` covers `span` of read(original): it
    starts after the longest prefix that reads at most `a` characters, and ends with the
    shortest prefix that reads at least `b` (and the characters after it that read as
    nothing more: the accent of its last letter, hidden characters).

    >>> map_back((1, 5), "a\u200bbomb!", lambda s: s.replace("\u200b", ""))
    (2, 6)
    """
    a, b = span
    length = lambda i: len(read(original[:i]))  # noqa: E731 - the view's length of a prefix
    start = _last(0, len(original), lambda i: length(i) <= a)
    end = _first(start, len(original), lambda j: length(j) >= b)
    if length(end) == b:
        end = _last(end, len(original), lambda j: length(j) <= b)
    return start, end


def _first(lo: int, hi: int, holds: Callable[[int], bool]) -> int:
    """The least i in [lo, hi] for which `holds` (monotone: false, then true); hi if none."""
    while lo < hi:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if holds(mid) else (mid + 1, hi)
    return lo


def _last(lo: int, hi: int, holds: Callable[[int], bool]) -> int:
    """The greatest i in [lo, hi] for which `holds` (monotone: true, then false); lo if none."""
    while lo < hi:
        mid = (lo + hi + 1) // 2
        lo, hi = (mid, hi) if holds(mid) else (lo, mid - 1)
    return lo


def as_sent(verdict: Verdict, conversation, view: View) -> Verdict:
    """`verdict`, judged on `view` of `conversation`, with its highest window in the last
    message as sent: unchanged when the guard read that text as it is, else mapped back (and
    marked `mapped`). The guards cut windows in guard_text of the view's text (the same text
    for every view of guard.views), so that is the reading mapped back."""
    window = verdict.highest_window
    if window is None:
        return verdict
    original = conversation[-1]["content"]
    read = lambda text: guard_text(view.text(text))  # noqa: E731
    if read(original) == original:
        return verdict
    start, end = map_back((window.start, window.end), original, read)
    return replace(verdict, highest_window=replace(window, start=start, end=end, mapped=True))
