"""The operator's moderation policy, and what a visitor may change of it: only tighten.

The operator sets the policy with flags, environment variables or a policy file
(`--policy FILE`, TOML or JSON); the page shows it read-only. A visitor's choices arrive
with every turn as one `VisitorChoices` value, and `turn_settings` turns the two into the
turn's `TurnSettings`, refusing any choice that would loosen the policy:

    operator threshold 0.5, visitor 0.3    -> 0.3 (stricter: allowed)
    operator threshold 0.5, visitor 0.9    -> SettingsRefused("... threshold 0.9 ...")
    operator S8 = 0.3, visitor S8 = 0.2    -> 0.2; visitor S8 = 0.4 -> SettingsRefused
    operator S8 = 0.3, visitor threshold 0.2 -> S8 at 0.2 too (a visitor's threshold caps each category's)
    operator checks every 16 tokens, visitor every 4   -> 4
    operator hold, visitor stream-first                 -> SettingsRefused
    operator disables S5, visitor enables it            -> S5 checked too
    visitor disables S1                                 -> SettingsRefused

The check runs on the server for every request (page events and API calls alike), so a
hand-made request gets the same answer as the page. `visitors="open"` is the explicit
demo mode in which visitors may also loosen (the page says so in its header). Custom
categories and the system prompt come only from the operator in the locked mode.
"""

from __future__ import annotations

import json
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import field_validator, model_validator

from chat import GenerationSettings
from guard.policy import Policy
from guard.taxonomy import Category
from moderation.fields import OutOfBounds, key_of
from moderation.schema import MAX_SYSTEM_CHARS, Generation, PolicyFields, bound
from moderation.thresholds import parse_thresholds
from moderation.turn import HOLD, TurnSettings

LOCKED, OPEN = "locked", "open"
STREAM_POLICIES = PolicyFields.model_fields["stream_policy"].annotation.__args__
_POLICY_KEYS = {key_of(PolicyFields, name) for name in PolicyFields.model_fields}
GENERATION = Generation()  # the schema's defaults


class SettingsRefused(ValueError):
    """A visitor's settings were refused; the message says which and why, for a person."""


class PolicyFileError(ValueError):
    """The policy file cannot be used; the message says what is wrong in it."""


class OperatorPolicy(PolicyFields):
    """What the operator decides: the schema's policy fields (moderation.schema), checked
    there. `disabled` holds category codes of the guard's taxonomy; `custom` categories are
    coded C1, C2, ... (Llama Guard reads them after the taxonomy's)."""

    @field_validator("disabled", mode="before")
    @classmethod
    def _codes(cls, value) -> frozenset[str]:
        found = codes(value)
        bad = sorted(c for c in found if not (c[:1] == "S" and c[1:].isdigit()))
        if bad:
            raise ValueError(f"unknown category codes {', '.join(bad)} (use S1, S2, ...)")
        return found

    @field_validator("category_thresholds", mode="before")
    @classmethod
    def _thresholds(cls, value) -> dict[str, float]:
        return parse_thresholds(value)

    @model_validator(mode="after")
    def _threshold_codes(self) -> OperatorPolicy:
        """A category threshold names a taxonomy code (S1..S14) or one of the custom categories."""
        known = {f"S{i}" for i in range(1, 15)} | {c.code for c in self.custom}
        unknown = sorted(set(self.category_thresholds) - known)
        if unknown:
            custom = f", or C1..C{len(self.custom)} for the custom categories" if self.custom else ""
            raise ValueError(f"thresholds: no category {', '.join(unknown)} (S1..S14{custom})")
        return self

    @field_validator("custom", mode="before")
    @classmethod
    def _categories(cls, value) -> tuple[Category, ...]:
        if not isinstance(value, (list, tuple)):
            raise ValueError("custom must be a list of {name, description} tables")
        return tuple(c if isinstance(c, Category) else custom_category(c, i) for i, c in enumerate(value, start=1))

    @property
    def is_open(self) -> bool:
        return self.visitors == OPEN

    def guard_policy(self, taxonomy: tuple[Category, ...], enabled: frozenset[str] | None = None) -> Policy:
        """The guard's Policy: the taxonomy minus what is off, plus the custom categories.
        `enabled`, when given, is the full set of taxonomy codes to check."""
        codes = {c.code for c in taxonomy}
        on = codes - self.disabled if enabled is None else codes & enabled
        return Policy(taxonomy=taxonomy, disabled=frozenset(codes - on), custom=self.custom)

    def summary(self, taxonomy: tuple[Category, ...]) -> dict:
        """The policy as plain data (the page shows it; the log stores it)."""
        return {
            "threshold": self.threshold,
            "thresholds": dict(self.category_thresholds),
            "check_every": self.check_every,
            "stream_policy": self.stream_policy,
            "system_prompt": self.system_prompt,
            "enabled": [c.code for c in taxonomy if c.code not in self.disabled],
            "disabled": sorted(self.disabled & {c.code for c in taxonomy}),
            "custom": [{"code": c.code, "name": c.name, "description": c.description} for c in self.custom],
            "max_new_tokens": self.max_new_tokens,
            "visitor_settings": self.visitors,
            "prompt_check": self.prompt_check,
        }


def custom_category(spec: str, index: int) -> Category:
    """'Name: description' -> Category('C<index>', name, description).

    >>> custom_category("Medical misinformation: AI models should not give dosing advice.", 1)
    Category(code='C1', name='Medical misinformation', description='AI models should not give dosing advice.')
    """
    if isinstance(spec, dict):
        spec = f"{spec.get('name', '')}: {spec.get('description', '')}"
    name, _, description = str(spec).partition(":")
    name, description = " ".join(name.split()), " ".join(description.split())
    if not name or len(name) > 80 or len(description) > 500:
        raise ValueError(
            f"a custom category is 'Name: description', a name of 1-80 characters "
            f"and at most 500 of description, not {spec!r}"
        )
    return Category(f"C{index}", name, description)


def codes(value) -> frozenset[str]:
    """'s5, S7' or ['S5', 's7'] -> {'S5', 'S7'}; anything else raises ValueError."""
    if value is not None and not isinstance(value, (str, list, tuple, set, frozenset)):
        raise ValueError(
            f'disabled categories are a list such as ["S5", "S7"] or a text such as "S5,S7", not {value!r}'
        )
    items = value.split(",") if isinstance(value, str) else list(value or [])
    return frozenset(str(c).strip().upper() for c in items if str(c).strip())


def read_policy_file(path: str | Path) -> dict:
    """The settings in a TOML or JSON policy file (see README, "Threat model"), checked."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
        data = json.loads(text) if path.suffix.lower() == ".json" else tomllib.loads(text)
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise PolicyFileError(f"cannot read the policy file {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise PolicyFileError(f"the policy file {path} must hold a table of settings")
    unknown = sorted(set(data) - _POLICY_KEYS)
    if unknown:
        raise PolicyFileError(
            f"unknown settings in {path}: {', '.join(unknown)} (known: {', '.join(sorted(_POLICY_KEYS))})"
        )
    empty = sorted(k for k, v in data.items() if v is None)
    if empty:  # JSON's null: no setting has a "nothing" value
        raise PolicyFileError(f"{', '.join(empty)} in {path} must have a value (leave a key out for its default)")
    custom = data.get("custom", [])
    if not isinstance(custom, list) or not all(isinstance(c, (dict, str)) for c in custom):
        raise PolicyFileError("custom must be a list of {name, description} tables")
    data["custom"] = custom
    return data


@dataclass(frozen=True)
class VisitorChoices:
    """What a visitor chose for one turn. None means "the operator's setting"."""

    temperature: float = GENERATION.temperature
    top_p: float = GENERATION.top_p
    max_new_tokens: int | None = None
    threshold: float | None = None
    thresholds: dict | None = None  # category code -> its own threshold; None: the operator's
    check_every: int | None = None
    stream_policy: str | None = None
    enabled: frozenset[str] | None = None  # taxonomy codes to check; None: the operator's
    system_prompt: str | None = None
    extra: dict = field(default_factory=dict)  # anything else sent: always refused


def _checked(name: str, value, cap: float | None = None):
    numbers = bound(name) if cap is None else bound(name).up_to(cap)
    try:
        return numbers.check(value)
    except OutOfBounds as exc:
        raise SettingsRefused(str(exc)) from None


def _stricter_interval(visitor: int, operator: int) -> bool:
    """Checking every `visitor` tokens is at least as strict as every `operator` (0 = only at the end)."""
    return operator == 0 or 0 < visitor <= operator


def turn_settings(operator: OperatorPolicy, choices: VisitorChoices, taxonomy: tuple[Category, ...]) -> TurnSettings:
    """The settings of one turn: the operator's policy, tightened (or, when visitors are
    open, changed) by the visitor's choices. Raises SettingsRefused with the reason."""
    if choices.extra:
        raise SettingsRefused(f"unknown settings: {', '.join(sorted(map(str, choices.extra)))}")
    generation = GenerationSettings(
        temperature=_checked("temperature", choices.temperature),
        top_p=_checked("top_p", choices.top_p),
        max_new_tokens=_checked(
            "max_new_tokens",
            operator.max_new_tokens if choices.max_new_tokens is None else choices.max_new_tokens,
            cap=operator.max_new_tokens,
        ),
    )
    threshold = operator.threshold if choices.threshold is None else _checked("threshold", choices.threshold)
    every = operator.check_every if choices.check_every is None else _checked("check_every", choices.check_every)
    stream = choices.stream_policy or operator.stream_policy
    if stream not in STREAM_POLICIES:
        raise SettingsRefused(f"the streaming policy must be {' or '.join(STREAM_POLICIES)}, not {stream!r}")
    system = operator.system_prompt if choices.system_prompt is None else str(choices.system_prompt)
    if len(system) > MAX_SYSTEM_CHARS:
        raise SettingsRefused(f"the system prompt is {len(system):,} characters; the limit is {MAX_SYSTEM_CHARS:,}")
    known = {c.code for c in taxonomy}
    enabled = known - operator.disabled if choices.enabled is None else frozenset(choices.enabled)
    if enabled - known:
        raise SettingsRefused(f"unknown categories: {', '.join(sorted(enabled - known))}")
    per_category = category_thresholds(operator, choices, threshold)
    if not operator.is_open:
        _refuse_loosening(operator, threshold, every, stream, system, enabled, known)
        _refuse_looser_categories(operator, per_category)
    return TurnSettings(
        threshold=threshold,
        category_thresholds=per_category,
        check_every=every,
        stream_policy=stream,
        policy=operator.guard_policy(taxonomy, enabled),
        generation=generation,
        system_prompt=system,
        prompt_check=operator.prompt_check,
    )


def category_thresholds(operator: OperatorPolicy, choices: VisitorChoices, threshold: float) -> dict[str, float]:
    """The turn's per-category thresholds: the operator's, each capped by a visitor's global
    threshold when they set one, then the visitor's own (checked: codes and 0..1)."""
    found = dict(operator.category_thresholds)
    if choices.threshold is not None:
        found = {code: min(t, threshold) for code, t in found.items()}
    try:
        asked = parse_thresholds(choices.thresholds or {})
    except ValueError as exc:
        raise SettingsRefused(str(exc)) from None
    return {**found, **asked}


def _refuse_looser_categories(operator: OperatorPolicy, per_category: dict[str, float]) -> None:
    """A visitor may lower a category's threshold, never raise it above the operator's (its
    own, else the operator's global threshold)."""
    looser = [
        f"{code} {t:g} is above the operator's {operator.category_thresholds.get(code, operator.threshold):g}"
        for code, t in per_category.items()
        if t > operator.category_thresholds.get(code, operator.threshold)
    ]
    if looser:
        raise SettingsRefused(
            "Settings refused: category thresholds " + "; ".join(looser) + ". Visitors may only "
            "tighten the operator's policy."
        )


def _refuse_loosening(
    operator: OperatorPolicy,
    threshold: float,
    every: int,
    stream: str,
    system: str,
    enabled: frozenset[str],
    known: set[str],
) -> None:
    why = []
    if threshold > operator.threshold:
        why.append(f"a threshold of {threshold:g} is above the operator's {operator.threshold:g}")
    if not _stricter_interval(every, operator.check_every):
        why.append(
            f"checking every {every or 'reply only at the end'} tokens is less often than the "
            f"operator's {operator.check_every}"
        )
    if operator.stream_policy == HOLD and stream != HOLD:
        why.append("the operator holds text until it is checked (stream policy 'hold')")
    if system != operator.system_prompt:
        why.append("the system prompt is set by the operator")
    missing = (known - operator.disabled) - enabled
    if missing:
        why.append(f"categories {', '.join(sorted(missing, key=lambda c: int(c[1:])))} are required by the operator")
    if why:
        raise SettingsRefused(
            "Settings refused: " + "; ".join(why) + ". Visitors may only tighten the operator's policy."
        )
