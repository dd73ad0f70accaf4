"""Rendering of turns and verdicts (no browser): raw chat text, escaping in the panel, badges,
bars, load status."""

from __future__ import annotations

from guard.taxonomy import LLAMA_GUARD_2, Category
from guard.verdict import Verdict, failed_verdict
from moderation.models import Models, ModelSlot
from moderation.turn import ANSWERED, REFUSED, Check, TurnState
from moderation.web.page import header_markdown, status_markdown
from moderation.web.panel import CUT, STOPPED, chat_messages, panel_html, turn_of_message


class Label:
    label = "Llama Guard 2 · meta-llama/Meta-Llama-Guard-2-8B"
    taxonomy = LLAMA_GUARD_2


def test_chat_messages_carry_the_text_exactly_as_typed_and_generated():
    """The Chatbot sanitises what it renders; its copy button copies the stored text, so
    the text must be the real one (no entities, no markers)."""
    turn = TurnState(user="Is 3 < 5 && 7 > 2?", shown="Yes: 3 < 5 & 7 > 2.", outcome=ANSWERED)
    assert chat_messages([turn]) == [
        {"role": "user", "content": "Is 3 < 5 && 7 > 2?"},
        {"role": "assistant", "content": "Yes: 3 < 5 & 7 > 2."},
    ]


def test_refused_turn_is_marked_in_the_chat_and_the_panel():
    verdict = Verdict(
        safe=False,
        categories=(LLAMA_GUARD_2[7],),
        score=0.93,
        raw="unsafe\nS8",
        latency_s=0.21,
        role="User",
        threshold=0.5,
        guard="Llama Guard 2",
    )
    turn = TurnState(
        user="how do I <b>build</b> a bomb",
        checks=(Check("prompt", verdict),),
        outcome=REFUSED,
        notice="I can't help with that.",
    )
    messages = chat_messages([turn])
    assert messages[0] == {"role": "user", "content": "how do I <b>build</b> a bomb"}
    assert messages[1]["metadata"]["title"] == "🛡️ Message flagged: S8 Indiscriminate Weapons · unsafe score 93%"
    assert (
        messages[2]["content"].startswith("I can't help with that.") and "edit your message" in messages[2]["content"]
    )
    html = panel_html([turn], "Llama Guard 2")
    assert "UNSAFE" in html and "<code>S8</code> Indiscriminate Weapons" in html and "210 ms" in html
    assert 'style="width:93.0%"' in html and 'style="left:50.0%"' in html  # score bar and threshold mark
    assert "unsafe score 93%, flagged at 50% or more" in html
    assert "Turn 1 · <i>refused</i> · " in html and "S8 Indiscriminate Weapons 93%" in html
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
    turn = TurnState(
        user="q",
        shown="answer",
        reply="answer",
        outcome=ANSWERED,
        dropped=2,
        stopped=True,
        checks=(Check("prompt", safe), Check("partial", safe), Check("response", safe)),
    )
    messages = chat_messages([turn])
    assert messages[1]["metadata"]["title"] == "ℹ️ Context trimmed" and "2 of the oldest" in messages[1]["content"]
    assert messages[2] == {"role": "assistant", "content": "answer"}  # the marker is a note, not text
    assert messages[3]["metadata"]["title"] == STOPPED
    assert "1 of 1 checks while streaming passed" in panel_html([turn])
    assert "<i>stopped</i>" in panel_html([turn]) and "answered" not in panel_html([turn])


def test_a_reply_cut_by_the_length_limit_says_so():
    turn = TurnState(user="q", shown="a long", reply="a long", outcome=ANSWERED, cut=True)
    assert chat_messages([turn])[-1]["metadata"]["title"] == CUT and "Length limit reached" in CUT
    assert "length limit reached" in panel_html([turn])


def test_panel_runs_oldest_first_with_only_the_newest_turn_open():
    safe = Verdict(safe=True, score=0.03, threshold=0.5)
    turns = [TurnState(user=f"q{i}", shown="a", outcome=ANSWERED, checks=(Check("prompt", safe),)) for i in range(3)]
    html = panel_html(turns)
    assert html.index('id="vp-turn-1"') < html.index('id="vp-turn-2"') < html.index('id="vp-turn-3"')
    assert html.count(" open>") == 1 and 'data-turn="3" open>' in html
    assert 'Turn 1 · <i>answered</i> · <span class="vp-worst">safe 3% (prompt)</span>' in html


def test_a_turns_title_shows_a_score_its_card_shows():
    """A safe streaming check's score (not shown in the card) never becomes the title's."""
    checks = (
        Check("prompt", Verdict(safe=True, score=0.01, threshold=0.5)),
        Check("partial", Verdict(safe=True, score=0.06, threshold=0.5)),
        Check("response", Verdict(safe=True, score=0.02, threshold=0.5)),
    )
    html = panel_html([TurnState(user="q", shown="a", outcome=ANSWERED, checks=checks)])
    assert '<span class="vp-worst">safe 2% (response)</span>' in html and "6%" not in html
    stopped = checks[:1] + (Check("partial", Verdict(safe=False, score=0.8, threshold=0.5)),)
    html = panel_html([TurnState(user="q", shown="", outcome="retracted", checks=stopped)])
    assert '<span class="vp-worst">unsafe 80% (stream check)</span>' in html and "80%, flagged" in html


def test_each_chat_message_maps_to_its_turn():
    refused = TurnState(
        user="a", outcome=REFUSED, notice="no", checks=(Check("prompt", Verdict(safe=False, score=0.9)),)
    )
    answered = TurnState(user="b", shown="c", outcome=ANSWERED)
    turns = [refused, answered]  # messages: a, flag note, refusal | b, c
    assert [turn_of_message(turns, i) for i in range(6)] == [0, 0, 0, 1, 1, None]


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


def test_while_loading_the_header_names_the_bundled_models_and_the_toast_says_what_the_status_says():
    models = Models(ModelSlot("Chat model", "offline", lambda: Label()), ModelSlot("Guard", "offline", lambda: Label()))
    header = header_markdown(models)  # not started: both wait
    assert "**the bundled SmolLM2-135M** (loading…)" in header and "**the bundled offline classifier**" in header
    toast, status = models.not_ready_message(), status_markdown(models)
    assert "`" not in toast and " ".join(line.removeprefix("⏳ ") for line in status.split("\n\n")) == toast


def test_a_scored_verdict_still_shows_its_note():
    from guard.verdict import Verdict
    from moderation.web.panel import verdict_html

    note = "2 earlier messages left out to fit the guard's 8,192-token window"
    html_ = verdict_html("prompt", Verdict(safe=True, score=0.1, threshold=0.5, note=note))
    assert "unsafe score 10%" in html_ and "2 earlier messages left out" in html_


def test_an_unsafe_verdict_lists_its_highest_category_scores():
    scores = {"S1": 0.10, "S8": 0.70, "S9": 0.05, "S2": 0.08, "C1": 0.02}
    custom = Category("C1", "<i>Spoilers</i>")
    unsafe = Verdict(
        safe=False,
        categories=(LLAMA_GUARD_2[7], custom),
        score=0.95,
        raw="unsafe\nS8,S12",
        threshold=0.5,
        category_scores=scores,
    )
    html = panel_html([TurnState(user="hi", checks=(Check("prompt", unsafe),), outcome=REFUSED)])
    named = html.split('<ul class="vp-cats">', 1)[1].split("</ul>", 1)[0]
    assert '<code>S8</code> Indiscriminate Weapons<span class="vp-cat-score">70%</span>' in named  # beside its name
    assert '<span class="vp-cat-score">2%</span>' in named  # the custom category's own score
    listed = html.split('<ul class="vp-cat-scores"', 1)[1].split("</ul>", 1)[0]
    assert listed.count("<li>") == 3  # the other categories, highest first, at least 1%
    assert listed.index("<code>S1</code>") < listed.index("<code>S2</code>") < listed.index("<code>S9</code>")
    assert "S8" not in listed and '<span class="vp-cat-score">10%</span>' in listed
    safe = Verdict(safe=True, score=0.2, threshold=0.5, category_scores={"S1": 0.15, "S8": 0.05})
    assert "vp-cat-scores" not in panel_html(
        [TurnState(user="hi", checks=(Check("prompt", safe),), outcome=ANSWERED, shown="ok")]
    )
    shown_custom = Verdict(safe=False, categories=(custom,), score=0.9, category_scores={"C1": 0.9})
    html = panel_html([TurnState(user="hi", checks=(Check("prompt", shown_custom),), outcome=REFUSED)])
    assert "&lt;i&gt;Spoilers" in html and "<i>Spoilers" not in html


def test_the_panel_names_the_guard_and_the_languages_it_covers():
    from guard.llama_guard import LlamaGuard
    from guard.offline import LANGUAGES, OfflineGuard
    from guard.prompt import GUARD2, GUARD3
    from moderation.web.panel import guard_caption

    offline = OfflineGuard.load()
    languages = LANGUAGES[offline.net.encoder]  # the committed weights' encoder: MiniLM English only, e5 nine
    assert guard_caption(None) == ""
    assert languages in guard_caption(offline) and offline.label in guard_caption(offline)
    turn = TurnState(
        user="hi", checks=(Check("prompt", Verdict(safe=True, score=0.01, parsed=True)),), outcome=ANSWERED
    )
    assert languages in panel_html([turn], guard_caption(offline))
    assert "English only" in LANGUAGES["minilm"] and "French" in LANGUAGES["e5"]
    assert "English-first" in LlamaGuard(backend=None, version=GUARD2).languages
    assert "Thai" in LlamaGuard(backend=None, version=GUARD3).languages
