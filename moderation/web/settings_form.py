"""The Settings accordion: the operator's policy, read-only, and the visitor's choices.

`SettingsWidgets.visitor_choices` is the one place widget values become a
`VisitorChoices`; the server checks it (moderation.policy.turn_settings) whatever the
browser allowed, so the sliders hand their values on as sent (`slider`).
"""

from __future__ import annotations

import gradio as gr

from guard.taxonomy import LLAMA_GUARD_2, Category
from moderation.fields import extra
from moderation.policy import GENERATION, OperatorPolicy, VisitorChoices
from moderation.schema import Generation, PolicyFields, bound
from moderation.turn import HOLD, STREAM_FIRST


def _choice(c: Category) -> str:
    return f"{c.code} {c.name}"


def policy_markdown(operator: OperatorPolicy, taxonomy: tuple[Category, ...]) -> str:
    """The operator's policy, read-only, for the Settings accordion."""
    on = [c for c in taxonomy if c.code not in operator.disabled]
    off = [c for c in taxonomy if c.code in operator.disabled]
    every = f"every {operator.check_every} tokens" if operator.check_every else "only when it is finished"
    who = "visitors may change it" if operator.is_open else "visitors may only make it stricter"
    lines = [
        f"**Moderation policy set by the operator** ({who})",
        f"- Unsafe when the unsafe probability is at least **{operator.threshold:g}**",
        f"- The streaming reply is checked **{every}**, policy **{operator.stream_policy}**",
        "- Categories checked: " + ", ".join(_choice(c) for c in on),
    ]
    if off:
        lines.append("- Not checked: " + ", ".join(_choice(c) for c in off))
    for c in operator.custom:
        lines.append(f"- Custom category {c.code}: **{c.name}**" + (f" ({c.description})" if c.description else ""))
    if operator.system_prompt:
        lines.append("- A system prompt is set (below); it is judged with every message")
    return "\n".join(lines)


def category_widget_value(operator: OperatorPolicy, taxonomy) -> tuple[list[str], list[str]]:
    """(choices, value) of the categories widget: every category when visitors may loosen,
    else only the operator's disabled ones, which a visitor may switch on."""
    if operator.is_open:
        choices = [_choice(c) for c in taxonomy]
        return choices, [_choice(c) for c in taxonomy if c.code not in operator.disabled]
    return [_choice(c) for c in taxonomy if c.code in operator.disabled], []


CHECK_EVERY_SLIDER_TOP = 128  # the page offers up to this many tokens between checks (the schema allows more)


def slider_ranges(o: OperatorPolicy) -> dict[str, tuple[float, float]]:
    """(minimum, maximum) of each slider: the schema's range (moderation.schema), narrowed
    to what a visitor may choose: at most the operator's max_new_tokens, and in the locked
    mode only the stricter side of the operator's threshold and check interval."""

    def span(name, model):
        b = bound(name, model)
        return b.low, b.high

    ranges = {name: span(name, Generation) for name in ("temperature", "top_p")}
    ranges["max_new_tokens"] = (span("max_new_tokens", Generation)[0], o.max_new_tokens)
    low, high = span("threshold", PolicyFields)
    ranges["threshold"] = (low, high if o.is_open else o.threshold)
    low = span("check_every", PolicyFields)[0]
    ranges["check_every"] = (
        (low, CHECK_EVERY_SLIDER_TOP) if o.is_open or not o.check_every else (low + 1, o.check_every)
    )
    return ranges


def stricter(name: str) -> str:
    """'Stricter: lower.' for a policy setting, as moderation.schema declares it."""
    return f"Stricter: {extra(PolicyFields.model_fields[name], 'stricter')}."


def check_every_label(minimum: float) -> str:
    """The check interval's label; it names 0 only when the slider reaches 0."""
    return "Check the streaming reply every N tokens" + (" (0 = only at the end)" if minimum == 0 else "")


TEMPERATURE_INFO = (
    "How much the reply varies: 0 always takes the most likely word (the same reply every time); "
    "higher is more varied and more surprising."
)


def slider(minimum: float, maximum: float, value: float, **options) -> gr.Slider:
    """A gr.Slider whose value reaches the handler as sent. The server's own check
    (moderation.policy.turn_settings) then refuses a crafted value (a string, NaN, out
    of range) with its readable message, where Gradio's range check would fail the event
    with an error toast. A range with nothing to choose (minimum = maximum, e.g. an
    operator threshold of 0 that visitors may only keep) is drawn fixed, as Gradio needs
    minimum < maximum. (Not a subclass: Gradio writes a .pyi file beside the module of
    every component class.)"""
    if maximum <= minimum:
        maximum, options["interactive"] = minimum + options.get("step", 1), False
    widget = gr.Slider(minimum, maximum, value, **options)
    widget.preprocess = _as_sent  # Gradio calls block.preprocess(value) for each input
    return widget


def _as_sent(payload):
    return payload


class SettingsWidgets:
    """The Settings accordion's widgets; `visitor_choices` reads them into one value."""

    def __init__(self, operator: OperatorPolicy, max_new_tokens: int):
        self.operator = operator
        o, taxonomy = operator, LLAMA_GUARD_2
        ranges = slider_ranges(o)
        self.policy = gr.Markdown(policy_markdown(o, taxonomy), elem_id="policy")
        self.system = gr.Textbox(
            o.system_prompt,
            label="System prompt" if o.is_open else "System prompt (set by the operator, read-only)",
            lines=2,
            interactive=o.is_open,
            elem_id="system-prompt",
            placeholder=(
                "e.g. You are a helpful assistant. Answer briefly."
                if o.is_open
                else "None: the operator set no system prompt."
            ),
            info="Told to the chat model first; the guard judges it with every message. "
            + ("" if o.is_open else "Set by the operator."),
        )
        with gr.Row():
            self.temperature = slider(
                *ranges["temperature"],
                GENERATION.temperature,
                step=0.05,
                label="Temperature (0 = greedy)",
                elem_id="temperature",
                info=TEMPERATURE_INFO,
            )
            self.top_p = slider(
                *ranges["top_p"],
                GENERATION.top_p,
                step=0.05,
                label="top_p",
                elem_id="top-p",
                info="Sample only from the most likely words that together make up this "
                "share of the probability; lower is more focused, 1 considers every word.",
            )
            self.max_new = slider(
                *ranges["max_new_tokens"],
                max_new_tokens,
                step=1,
                label="Max new tokens",
                elem_id="max-new-tokens",
                info="The reply stops at this length and says so (length limit reached).",
            )
        with gr.Row():
            self.threshold = slider(
                *ranges["threshold"],
                o.threshold,
                step=0.01,
                label="Guard threshold (unsafe if p ≥ threshold)",
                elem_id="threshold",
                info="A message is flagged when its unsafe probability is at least this. " + stricter("threshold"),
            )
            self.check_every = slider(
                *ranges["check_every"],
                o.check_every,
                step=1,
                elem_id="check-every",
                label=check_every_label(ranges["check_every"][0]),
                info="How many new tokens the guard waits for between checks. " + stricter("check_every"),
            )
            policies = [HOLD] if o.stream_policy == HOLD and not o.is_open else [STREAM_FIRST, HOLD]
            self.stream_policy = gr.Radio(
                policies,
                value=o.stream_policy,
                label="While streaming",
                elem_id="stream-policy",
                info="stream-first: show at once, retract if flagged · hold: show only checked text. "
                + stricter("stream_policy"),
            )
        choices, value = category_widget_value(o, taxonomy)
        self.categories = gr.CheckboxGroup(
            choices,
            value=value,
            elem_id="categories",
            visible=bool(choices),
            label="Categories checked" if o.is_open else "Also check",
            info="Stricter: more categories checked.",
        )

    @property
    def all(self) -> set:
        return {
            self.system,
            self.temperature,
            self.top_p,
            self.max_new,
            self.threshold,
            self.check_every,
            self.stream_policy,
            self.categories,
        }

    def visitor_choices(self, form: dict, taxonomy) -> VisitorChoices:
        """The one place widget values become a VisitorChoices (checked later, on the server)."""
        picked = frozenset(str(label).split(" ", 1)[0] for label in form.get(self.categories) or [])
        enabled = (
            picked
            if self.operator.is_open
            else frozenset(c.code for c in taxonomy if c.code not in self.operator.disabled) | picked
        )
        return VisitorChoices(
            temperature=form.get(self.temperature),
            top_p=form.get(self.top_p),
            max_new_tokens=form.get(self.max_new),
            threshold=form.get(self.threshold),
            check_every=form.get(self.check_every),
            stream_policy=form.get(self.stream_policy),
            enabled=enabled,
            system_prompt=form.get(self.system) if self.operator.is_open else None,
        )
