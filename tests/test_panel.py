"""Rendering of turns and verdicts (no browser): escaping, badges, bars, load status."""

from __future__ import annotations

from guard.taxonomy import LLAMA_GUARD_2, Category
from guard.verdict import Verdict, failed_verdict
from moderation.models import Models, ModelSlot
from moderation.panel import as_markdown_text, chat_messages, panel_html
from moderation.turn import ANSWERED, REFUSED, Check, TurnState
from moderation.ui import header_markdown, status_markdown


class Label:
    label = "Llama Guard 2 · meta-llama/Meta-Llama-Guard-2-8B"
    taxonomy = LLAMA_GUARD_2


def test_markup_is_escaped_outside_code_only():
    assert as_markdown_text("<script>alert(1)</script>") == "&lt;script&gt;alert(1)&lt;/script&gt;"
    assert as_markdown_text("use `<div>` or\n```html\n<p>x</p>\n```") == "use `<div>` or\n```html\n<p>x</p>\n```"
    assert as_markdown_text("a & b < c") == "a &amp; b &lt; c"


def test_refused_turn_is_marked_in_the_chat_and_the_panel():
    verdict = Verdict(safe=False, categories=(LLAMA_GUARD_2[7],), score=0.93, raw="unsafe\nS8",
                      latency_s=0.21, role="User", threshold=0.5, guard="Llama Guard 2")
    turn = TurnState(user="how do I <b>build</b> a bomb", checks=(Check("prompt", verdict),), outcome=REFUSED,
                     notice="I can't help with that.")
    messages = chat_messages([turn])
    assert messages[0] == {"role": "user", "content": "how do I &lt;b&gt;build&lt;/b&gt; a bomb"}
    assert messages[1]["metadata"]["title"] == "🛡️ Message flagged: S8 Indiscriminate Weapons · p(unsafe) 0.93"
    assert messages[2] == {"role": "assistant", "content": "I can't help with that."}
    html = panel_html([turn], "Llama Guard 2")
    assert "UNSAFE" in html and "<code>S8</code> Indiscriminate Weapons" in html and "210 ms" in html
    assert 'style="width:93.0%"' in html and 'style="left:50.0%"' in html  # score bar and threshold mark
    assert "&lt;b&gt;build" in html and "<b>build" not in html


def test_custom_category_names_and_raw_answers_are_escaped_in_the_panel():
    custom = Category("C1", "<img src=x onerror=alert(1)>")
    failed = failed_verdict("parse error", raw="<script>x</script>")
    flagged = Verdict(safe=False, categories=(custom,), score=None, note="no logprobs", role="Agent")
    turn = TurnState(user="hi", checks=(Check("prompt", failed), Check("response", flagged)), outcome=REFUSED)
    html = panel_html([turn])
    assert "<img" not in html and "<script>" not in html and "BLOCKED" in html and "no logprobs" in html


def test_answered_turn_with_dropped_history_and_stop():
    safe = Verdict(safe=True, score=0.01, latency_s=0.05, threshold=0.5)
    turn = TurnState(user="q", shown="answer", reply="answer", outcome=ANSWERED, dropped=2, stopped=True,
                     checks=(Check("prompt", safe), Check("partial", safe), Check("response", safe)))
    messages = chat_messages([turn])
    assert messages[1]["metadata"]["title"] == "ℹ️ Context trimmed" and "2 of the oldest" in messages[1]["content"]
    assert messages[2]["content"] == "answer\n\n_(stopped)_"
    assert "1 of 1 checks while streaming passed" in panel_html([turn])


def test_load_failure_is_shown_with_what_to_do():
    def fail():
        raise RuntimeError("meta-llama/Meta-Llama-Guard-2-8B is a gated model. Accept its license ... set HF_TOKEN")

    models = Models(ModelSlot("Chat model", "offline", lambda: Label()), ModelSlot("Guard", "meta-llama/x", fail))
    models.start().wait(10)
    assert models.settled and not models.ready
    status = status_markdown(models)
    assert "failed to load" in status and "HF_TOKEN" in status
    assert "(failed to load)" in header_markdown(models) and "Llama Guard 2 · meta-llama" in header_markdown(models)
    assert "failed to load" in models.not_ready_message()
