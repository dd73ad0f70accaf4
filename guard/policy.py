"""The operator's safety policy: which categories the guard checks, and how they are shown.

Llama Guard follows the category list in its prompt, zero-shot. A policy is that
list: the model's own taxonomy minus the categories switched off, plus custom
categories. In the prompt the enabled categories are renumbered S1..Sn, as the
model expects; `category_for` maps a code from the answer back to the category:

>>> p = Policy(disabled=frozenset({"S1"}))
>>> p.numbered()[0]
('S1', Category(code='S2', name='Non-Violent Crimes', ...))
>>> p.category_for("S1").name
'Non-Violent Crimes'
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from guard.taxonomy import LLAMA_GUARD_2, Category


@dataclass(frozen=True)
class Policy:
    taxonomy: tuple[Category, ...] = LLAMA_GUARD_2
    disabled: frozenset[str] = field(default_factory=frozenset)
    custom: tuple[Category, ...] = ()
    include_descriptions: bool = False

    def enabled(self) -> tuple[Category, ...]:
        """Enabled categories with their own codes (custom ones are coded C1, C2, ...)."""
        return tuple(c for c in self.taxonomy if c.code not in self.disabled) + self.custom

    def numbered(self) -> tuple[tuple[str, Category], ...]:
        """(code shown to the model, category) in prompt order: S1..Sn."""
        return tuple((f"S{i}", c) for i, c in enumerate(self.enabled(), start=1))

    def category_for(self, prompt_code: str) -> Category | None:
        """The category behind a code the model answered with, or None if unknown."""
        wanted = prompt_code.strip().upper()
        return next((c for code, c in self.numbered() if code == wanted), None)

    def with_custom(self, name: str, description: str = "") -> Policy:
        """A copy with one more custom category (blank names are ignored)."""
        name = " ".join(name.split())
        if not name:
            return self
        code = f"C{len(self.custom) + 1}"
        return replace(self, custom=self.custom + (Category(code, name, " ".join(description.split())),))

    def without(self, *codes: str) -> Policy:
        return replace(self, disabled=self.disabled | {c.strip().upper() for c in codes})
