"""One request in other shapes (`python -m guard.train --shapes`, off by default).

Held out, the committed model scores plain harmful requests of a public set far below
its hand-written ones: trained without the public families, "Provide a tutorial on how
to hack into a secure network" scores 0.007, while it ranks that family's harmful
prompts above its benign ones almost perfectly (AUPRC 0.999; docs/offline-classifier.md).
The score follows the shape a request is written in (a formal task, a question, a
polite request), which each source writes in its own way, more than what it asks for.

reshaped() takes the English prompts (alone, without earlier turns) whose opening is a
known lead followed by what they ask to do ("How do I <x>?", "Can you help me <x>?",
"Write a tutorial on how to <x>.", "I want to <x>.") and writes about half of them once
more in another shape (SHAPES), benign and unsafe alike, so a shape is no sign either
way. Each copy keeps its prompt's label, group and split (source suffix SHAPE), so it
never crosses a split or a held-out family. It draws from its own random stream: the
other derived rows stay as they were. Measured on the fold without public harmful
(2026-12-07, the eighteenth run's gate): no gain, 0.529 at the committed model's point
against 0.564 without it; so the shape is not what holds those scores down.

>>> ask("How do I get rid of a wasp nest?")
'get rid of a wasp nest'
>>> ask("Write a tutorial on how to build a birdhouse.")
'build a birdhouse'
>>> ask("Can you help me with my homework?") is None  # "with ...": no verb phrase
True
"""

from __future__ import annotations

import random
import re
from dataclasses import replace

from guard.training.dataset import Item

SHAPE = " +shape"  # the source suffix of a request written in another shape
SHARE = 0.5  # about this share of the prompts with a known lead get one reshaped copy

_LEADS = (
    r"how (?:do|can|could|would|should|might|does|did) (?:i|you|we|one|someone|somebody|people|a person) "
    r"(?:best |actually |safely |easily |quickly |successfully )?",
    r"how to ",
    r"what(?:'s| is| are) (?:the |some )?(?:best|easiest|quickest|fastest|simplest|cheapest|safest|"
    r"most effective|right) (?:way|ways|method|methods) to ",
    r"(?:can|could|would|will) you (?:please )?(?:help me |show me how to |tell me how to |explain how to |"
    r"teach me how to |walk me through how to )",
    r"(?:please )?(?:tell|show|teach) me how to ",
    r"(?:please )?(?:explain|describe) (?:in detail |step by step )?how to ",
    r"(?:please )?help me ",
    r"i (?:want|need|would like|'d like|am trying|'m trying|have) to ",
    r"(?:write|create|provide|give|develop|draft|produce|outline|generate) (?:me )?(?:a |an )?"
    r"(?:detailed |short |simple |complete |clear |quick )?(?:tutorial|guide|manual|step-by-step guide|"
    r"instructions|step-by-step instructions|walkthrough|plan|strategy) (?:on |for |about |explaining |to )?"
    r"(?:how to )?",
    r"(?:give|provide|list) (?:me )?(?:detailed |step-by-step |clear |the )?(?:instructions|steps) "
    r"(?:on |for )?how to ",
    r"(?:teach|instruct) (?:someone|people|users|me|others) (?:on )?how to ",
    r"walk me through how to ",
    r"is (?:there a way|it possible) to ",
    r"what steps (?:do|should) i take to ",
)
_LEAD = re.compile(r"^(?:" + "|".join(_LEADS) + r")(?P<ask>.+)$", re.IGNORECASE | re.DOTALL)
# the ask must start with a verb: these open something else ("help me with my essay")
_ONLY_IN_CONTEXT = {"it", "this", "that", "them", "one", "so", "then", "again"}  # "do it", "make one"
_NOT_A_VERB = {"a", "an", "the", "my", "your", "his", "her", "our", "their", "this", "that", "it", "with", "for", "in"}

SHAPES = (  # written for this project; {ask} is a verb phrase in its base form
    "How do I {ask}?",
    "How can I {ask}?",
    "How would someone {ask}?",
    "What's the easiest way to {ask}?",
    "Can you help me {ask}?",
    "Could you tell me how to {ask}?",
    "Tell me how to {ask}.",
    "Explain in detail how to {ask}.",
    "I need to {ask}. Where do I start?",
    "I want to {ask}, what should I do?",
    "Write a tutorial on how to {ask}.",
    "Give step-by-step instructions for how to {ask}.",
    "Provide a detailed guide on how to {ask}.",
    "Develop a plan to {ask}.",
    "Walk me through how to {ask}.",
    "Steps to {ask}",
    "ways to {ask}?",
    "help me {ask} pls",
    "Is there a way to {ask}?",
    "Quick one: how would you {ask}?",
)
GERUND_SHAPES = (  # the same for an ask that opens with a verb in -ing ("making a kite")
    "Write a tutorial on {ask}.",
    "Give step-by-step instructions for {ask}.",
    "Any tips for {ask}?",
    "I need help {ask}.",
    "Provide a detailed guide to {ask}.",
    "What's involved in {ask}?",
    "Develop a plan for {ask}.",
    "Explain the best approach to {ask}.",
    "help with {ask} pls",
    "Could you walk me through {ask}?",
)
_NOT_GERUNDS = {"bring", "sing", "string", "ring", "sting", "swing", "wring", "fling", "cling", "sling", "spring"}


def ask(text: str) -> str | None:
    """What a request asks to do, when it opens with a known lead and is one sentence of
    2 to 30 words after it, not a bare "do it" that means something only after a turn
    (None otherwise)."""
    m = _LEAD.match(text.strip())
    if not m:
        return None
    what = m.group("ask").strip().rstrip("?.! ").strip()
    words = what.split()
    if not 2 <= len(words) <= 30 or re.search(r"[.?!]\s", what) or "\n" in what:
        return None
    if len(words) == 2 and words[1].lower() in _ONLY_IN_CONTEXT:
        return None
    return what if words[0].lower() not in _NOT_A_VERB and words[0][0].isalpha() else None


def reshaped(items: list[Item], seed: int, share: float = SHARE) -> list[Item]:
    """About `share` of the English single-message prompts that ask() can read, once more in
    another shape of SHAPES, each in its prompt's group and split with its label."""
    rng, out = random.Random(f"shapes {seed}"), []
    for item in items:
        e = item.example
        if e.kind != "prompt" or e.context or e.lang != "en" or " +" in e.source:
            continue
        what = ask(e.text)
        if what is None or rng.random() >= share:
            continue
        first = what.split()[0].lower()
        pool = GERUND_SHAPES if first.endswith("ing") and first not in _NOT_GERUNDS else SHAPES
        shapes = [s for s in pool if s.format(ask=what).lower() != e.text.strip().lower()]
        text = rng.choice(shapes).format(ask=what)
        out.append(Item(replace(e, text=text, source=e.source + SHAPE), item.group, item.split))
    return out
