"""The source families that leave-one-source-out holds out in turn (guard.training.transfer),
and that a derived example belongs to: the family of its source, whatever it was built with
("... +frame", "... +drift")."""

from __future__ import annotations

FAMILIES = (  # (family, source prefix): the first prefix that matches names the family
    ("public harmful", "advbench"),  # AdvBench and PyRIT's red-team objectives
    ("public harmful", "pyrit"),
    ("public benign", "freshqa"),  # FreshQA and WritingBench
    ("public benign", "writingbench"),
    ("handwritten v1-v2", "handwritten (handwritten)"),  # handwritten, _more, _extra
    ("handwritten v1-v2", "handwritten (handwritten_more)"),
    ("handwritten v1-v2", "handwritten (handwritten_extra)"),
    ("handwritten v3", "handwritten (handwritten_v3)"),  # v3 and v4: both written for issue 20
    ("handwritten v3", "handwritten (handwritten_v4)"),
    ("handwritten v3", "handwritten (handwritten_words)"),  # optional: --with-tables words
    ("multilingual v2", "handwritten (multilingual_v2)"),  # optional: --with-tables "multilingual v2"
    ("multilingual", "handwritten (multilingual)"),
    ("multilingual", "handwritten (multilingual_replies)"),  # optional: --with-tables "multilingual replies"
    ("multi-turn", "handwritten (multiturn)"),
    ("multi-turn v2", "handwritten (multiturn_v2)"),
    ("multi-turn scenes", "handwritten (multiturn_scenes)"),  # optional: --with-tables scenes
    ("multi-turn scenes", "handwritten (multiturn_objects)"),  # optional: --with-tables objects
    ("handwritten replies", "handwritten (handwritten_replies)"),  # optional: --with-tables replies
    ("chat replies", "smollm2"),
)


def family(source: str) -> str:
    """The source family of an example, derived examples ("... +frame") included.

    >>> family("advbench (pyrit 1.1.0) +frame"), family("handwritten (handwritten_more)")
    ('public harmful', 'handwritten v1-v2')
    """
    base = source.split(" +")[0]
    return next((name for name, prefix in FAMILIES if base.startswith(prefix)), base)
