"""The review page's layout and wiring (the handlers are plain functions in `review`).

Filters and queues on top, the turns newest first, and below them the selected turn read
as its session's conversation, with the labelling bar: pick the verdict, the categories
it should have had and a note, then *Correct*, *False positive* or *False negative*. From
the keyboard, outside a text field: `1` `2` `3` label, `j` / `k` (or ↓ / ↑) go to the next
/ previous turn. After a label the next turn opens, so a queue is worked through key by key. The
*Calibration* section shows what `python -m moderation.log thresholds` prints: the
thresholds the operator's labels suggest, with their precision, recall and support.
"""

from __future__ import annotations

import json
from types import SimpleNamespace

import gradio as gr
from sqlalchemy.engine import Engine

from moderation.log.calibration import (
    CALIBRATION_COLUMNS,
    DEFAULT_TARGET_FPR,
    calibrate_log,
    policy_snippet,
    table_rows,
)
from moderation.log.labels import LABELS
from moderation.log.review import (
    FILTERS,
    LABELLED,
    LATENCY_COLUMNS,
    OUTCOMES,
    QUEUES,
    TABLE_COLUMNS,
    TABLE_ROWS,
    download_links,
    following,
    review,
    save_label,
    session_transcript,
    step,
    turn_detail,
    turn_filter,
    verdict_choices,
)
from moderation.log.transcript import TRANSCRIPT_CSS

COLUMN_WIDTHS = ["12%", "20%", "7%", "7%", "6%", "10%", "20%", "11%", "7%"]  # as TABLE_COLUMNS: no header breaks
KEYS = {
    "1": "label-correct",
    "2": "label-false_positive",
    "3": "label-false_negative",
    "j": "next-turn",
    "ArrowDown": "next-turn",
    "k": "prev-turn",
    "ArrowUp": "prev-turn",
}
BUTTONS = {"correct": "✓ Correct [1]", "false_positive": "False positive [2]", "false_negative": "False negative [3]"}

PAGE_HEAD = """<script>
document.addEventListener("keydown", (event) => {
  if (event.ctrlKey || event.metaKey || event.altKey || event.repeat) return;
  const target = event.target;
  if (target && (target.isContentEditable || ["INPUT", "TEXTAREA", "SELECT"].includes(target.tagName))) return;
  const id = KEYS[event.key];
  const button = id && document.getElementById(id);
  if (!button) return;
  event.preventDefault();
  button.click();
});
</script>""".replace("KEYS", json.dumps(KEYS))
PAGE_CSS = (
    TRANSCRIPT_CSS
    + """
#turns { max-height: 28rem; }
#keys { opacity: .75; font-size: .85em; }
"""
)


def create_review(engine: Engine, author: str = "operator") -> gr.Blocks:
    """Build the page; nothing runs until it is mounted. Labels made on it are `author`'s."""
    with gr.Blocks(title="Moderation log: review") as page:
        gr.Markdown("## 🛡️ Moderation log\nEvery turn and every guard verdict, newest first. Times are UTC.")
        f = _filter_widgets()
        t = _turn_widgets()
        s = _stats_widgets()
        c = _calibration_widgets()
        _wire(page, ReviewHandlers(engine, author), f, t, s, c)
    return page


class ReviewHandlers:
    """What the page's controls do, over one log (plain functions of the review module)."""

    def __init__(self, engine: Engine, author: str):
        self.engine, self.author = engine, author

    def show(self, *values):
        try:
            r = review(self.engine, turn_filter(*values))
        except ValueError as exc:
            raise gr.Error(str(exc)) from None
        note = f"**{r.total:,} turns** match"
        if r.total > len(r.table):
            note += f"; the table shows the newest {len(r.table):,}"
        if r.total > r.counted:
            note += f", the plots and percentiles the newest {r.counted:,} (narrow the dates for older ones)"
        ids = list(r.table["Turn id"])
        return (note + ".", r.table, r.by_outcome, r.by_category, r.latency, download_links(*values), ids)

    def open_turn(self, turn_id: str):
        html, record = session_transcript(self.engine, turn_id)
        choices, chosen = verdict_choices(record)
        return record.get("id", turn_id), html, gr.Dropdown(choices=choices, value=chosen), record

    def pick(self, ids: list[str], evt: gr.SelectData):
        row = evt.index[0] if isinstance(evt.index, (list, tuple)) else evt.index
        return self.open_turn(ids[row] if ids and 0 <= row < len(ids) else "")

    def label_and_go_on(self, kind: str):
        def handler(turn_id, seq, categories, note, ids, *values):
            try:
                said = save_label(self.engine, self.author, turn_id, seq, kind, categories, note)
            except ValueError as exc:
                raise gr.Error(str(exc)) from None
            shown = self.show(*values)
            return (said, "", "", *shown, *self.open_turn(following(turn_id, ids, shown[-1])))

        return handler

    def calibration(self, target):
        if not isinstance(target, (int, float)) or not 0 <= target < 1:
            raise gr.Error("the target false positive rate is a number from 0 up to 1")
        cal = calibrate_log(self.engine, float(target))
        return table_rows(cal), policy_snippet(cal)

    def go(self, by: int):
        def handler(current: str, rows: list[str]):
            return self.open_turn(step(current, rows, by))

        return handler


def _filter_widgets() -> SimpleNamespace:
    """The queue and the filters, by the names FILTERS lists, and Search."""
    queue = gr.Radio(QUEUES, value="", label="Queue", elem_id="queue")
    with gr.Row():
        outcome = gr.Dropdown(OUTCOMES, value="any", label="Outcome", elem_id="f-outcome")
        category = gr.Textbox(label="Flagged category", placeholder="e.g. S8", elem_id="f-category")
        score_min = gr.Textbox(label="Score from", placeholder="0.5", elem_id="f-score-min")
        score_max = gr.Textbox(label="Score to", placeholder="1", elem_id="f-score-max")
        labelled = gr.Dropdown(LABELLED, value="", label="Labelled", elem_id="f-labelled")
    with gr.Row():
        session = gr.Textbox(label="Session", placeholder="a session id from the table", elem_id="f-session")
        since = gr.Textbox(label="From (date or ISO time)", placeholder="2026-11-01", elem_id="f-since")
        until = gr.Textbox(label="Until (exclusive)", placeholder="2026-12-01", elem_id="f-until")
        text = gr.Textbox(label="Text contains", elem_id="f-text")
    search = gr.Button("Search", variant="primary", elem_id="search")
    by_name = dict(
        outcome=outcome,
        category=category,
        since=since,
        until=until,
        text=text,
        session=session,
        score_min=score_min,
        score_max=score_max,
        labelled=labelled,
        queue=queue,
    )
    return SimpleNamespace(queue=queue, search=search, filters=[by_name[name] for name in FILTERS])


def _turn_widgets() -> SimpleNamespace:
    """The table of turns, the open turn's transcript, and labelling it."""
    total = gr.Markdown(elem_id="total")
    table = gr.Dataframe(
        headers=TABLE_COLUMNS,
        interactive=False,
        wrap=True,
        elem_id="turns",
        column_widths=COLUMN_WIDTHS,
        label=f"Turns, newest first (at most {TABLE_ROWS}; select one to read its conversation)",
    )
    ids = gr.State([])
    with gr.Row(equal_height=False):
        with gr.Column(scale=3):
            transcript = gr.HTML(elem_id="transcript")
        with gr.Column(scale=2):
            turn_id = gr.Textbox(label="Turn id", elem_id="turn-id")
            verdict = gr.Dropdown([], label="Verdict to label", elem_id="label-verdict")
            should = gr.Textbox(label="Categories it should have had", placeholder="S1 S8", elem_id="label-categories")
            note = gr.Textbox(label="Note", lines=2, max_length=2000, elem_id="label-note")
            with gr.Row():
                buttons = {
                    kind: gr.Button(
                        BUTTONS[kind],
                        elem_id=f"label-{kind}",
                        size="sm",
                        variant="primary" if kind == "correct" else "secondary",
                    )
                    for kind in LABELS
                }
            with gr.Row():
                previous = gr.Button("◀ Previous [k]", elem_id="prev-turn", size="sm")
                following_ = gr.Button("Next [j] ▶", elem_id="next-turn", size="sm")
            said = gr.Markdown(elem_id="label-status")
            gr.Markdown(
                "Keys outside a text field: **1** correct · **2** false positive · **3** false negative · "
                "**j**/**↓** next · **k**/**↑** previous",
                elem_id="keys",
            )
    with gr.Accordion("The turn's raw record (JSON)", open=False):
        detail = gr.JSON(elem_id="turn-detail")
    return SimpleNamespace(
        total=total,
        table=table,
        ids=ids,
        transcript=transcript,
        turn_id=turn_id,
        verdict=verdict,
        should=should,
        note=note,
        buttons=buttons,
        previous=previous,
        following=following_,
        said=said,
        detail=detail,
    )


def _stats_widgets() -> SimpleNamespace:
    """Counts per day, guard latency, and the downloads."""
    with gr.Row():
        by_outcome = gr.BarPlot(x="period", y="count", color="outcome", label="Turns per outcome per day")
        by_category = gr.BarPlot(x="period", y="count", color="category", label="Flagged turns per category per day")
    latency = gr.Dataframe(
        headers=LATENCY_COLUMNS, interactive=False, elem_id="latency", label="Guard latency per stage (ms)"
    )
    downloads = gr.HTML(elem_id="downloads")
    return SimpleNamespace(by_outcome=by_outcome, by_category=by_category, latency=latency, downloads=downloads)


def _calibration_widgets() -> SimpleNamespace:
    """Thresholds suggested by the operator's labels (moderation.log.calibration)."""
    with gr.Accordion("Calibration: thresholds from the operator's labels", open=False, elem_id="calibration"):
        gr.Markdown(
            "The lowest threshold that flags at most the target share of truly safe verdicts; a number "
            "needs 5 labels of each kind (docs/log.md, *Calibration*)."
        )
        with gr.Row():
            target = gr.Number(
                DEFAULT_TARGET_FPR,
                label="Target false positive rate",
                minimum=0,
                maximum=0.99,
                step=0.01,
                elem_id="target-fpr",
            )
            compute = gr.Button("Suggest thresholds", elem_id="calibrate")
        suggested = gr.Dataframe(headers=CALIBRATION_COLUMNS, interactive=False, elem_id="calibration-table")
        snippet = gr.Code(language=None, label="Policy file (TOML)", elem_id="calibration-snippet")
    return SimpleNamespace(target=target, compute=compute, suggested=suggested, snippet=snippet)


def _wire(
    page: gr.Blocks, h: ReviewHandlers, f: SimpleNamespace, t: SimpleNamespace, s: SimpleNamespace, c: SimpleNamespace
) -> None:
    shown = [t.total, t.table, s.by_outcome, s.by_category, s.latency, s.downloads, t.ids]
    opened = [t.turn_id, t.transcript, t.verdict, t.detail]
    for trigger in (f.search.click, page.load, f.queue.change):
        trigger(h.show, f.filters, shown, api_name="search" if trigger == f.search.click else False)
    t.table.select(h.pick, t.ids, opened, api_visibility="private")
    t.turn_id.submit(lambda i: h.open_turn(i)[1:3], t.turn_id, [t.transcript, t.verdict], api_visibility="private")
    t.turn_id.submit(lambda i: turn_detail(h.engine, i), t.turn_id, t.detail, api_name="turn")
    for kind, button in t.buttons.items():
        button.click(
            h.label_and_go_on(kind),
            [t.turn_id, t.verdict, t.should, t.note, t.ids, *f.filters],
            [t.said, t.should, t.note, *shown, *opened],
            api_visibility="private",
        )
    c.compute.click(h.calibration, c.target, [c.suggested, c.snippet], api_visibility="private")
    for button, by in ((t.previous, -1), (t.following, 1)):
        button.click(h.go(by), [t.turn_id, t.ids], opened, api_visibility="private")
