"""The page's CSS and its one script (handed to `Blocks.launch`, Gradio 6's place for them).

CSS: the verdict panel takes the chat's height and scrolls on its own; its colours come
from the theme's CSS variables, so the score bar reads in light and dark mode alike;
on a phone the chat is shorter and the verdicts follow right under it.

The script only decorates what Gradio rendered, with no state of its own: it numbers the
chat's messages by turn (a user message starts a turn; the number is CSS-generated text,
so copying a message never copies it), keeps the panel scrolled to the newest turn, and
links the two: clicking a chat message opens its turn's card, clicking a card's title
shows its turn in the chat.
"""

PAGE_CSS = """
#verdicts .vp{max-height:470px;overflow-y:auto;padding-right:4px}
.vp-turn{border:1px solid var(--border-color-primary);border-radius:8px;padding:6px 8px;margin-bottom:6px}
.vp-turn>summary{cursor:pointer;font-weight:600;white-space:nowrap;overflow:hidden;text-overflow:ellipsis}
.vp-turn.vp-flagged .vp-worst{color:var(--error-text-color,#b91c1c)}
.vp-user{color:var(--body-text-color-subdued);font-size:.9em;margin:2px 0 6px}
.vp-verdict{margin:6px 0}.vp-head{display:flex;gap:8px;align-items:center}
.vp-stage{min-width:6.5em;font-weight:500}.vp-lat{margin-left:auto;color:var(--body-text-color-subdued);font-size:.85em}
.vp-badge{padding:1px 8px;border-radius:10px;color:#fff;font-size:.8em;font-weight:700}
.vp-safe.vp-badge{background:#15803d}.vp-unsafe.vp-badge{background:#b91c1c}
.vp-error.vp-badge{background:#b45309}
.vp-bar{position:relative;height:8px;background:var(--border-color-primary);border-radius:4px;margin:8px 0 2px}
.vp-fill{height:100%;border-radius:4px}.vp-fill.vp-safe{background:#22c55e}
.vp-fill.vp-unsafe{background:#ef4444}
.vp-thr{position:absolute;top:-4px;width:3px;height:16px;background:var(--body-text-color);border-radius:1px}
.vp-meta,.vp-note,.vp-guard{font-size:.85em;color:var(--body-text-color-subdued)}
.vp-cats{margin:2px 0 0 1.2em;padding:0}.vp-empty{color:var(--body-text-color-subdued)}
.vp-cat-scores{margin:2px 0 0 1.2em;padding:0;font-size:.9em;color:var(--body-text-color-subdued)}
.vp-cat-score{margin-left:.5em;font-variant-numeric:tabular-nums}
.vp-highlight{outline:2px solid var(--color-accent);outline-offset:2px;border-radius:8px}
#chat [data-testid][data-turn]::before{content:"Turn " attr(data-turn);display:block;font-size:.7em;
  color:var(--body-text-color-subdued);margin-bottom:2px}
#chat .message-row[data-turn]{cursor:pointer}
#notice{border-left:4px solid var(--color-accent);padding-left:10px}
#action-row{flex-wrap:nowrap;gap:6px}#action-row button{min-width:0}
@media (max-width: 640px){
  #chat{height:40vh !important;min-height:260px}
  #verdicts .vp{max-height:60vh}
  #notice{font-size:.9em}
}
"""

PAGE_JS = """
() => {
  const flash = (el) => {
    el.classList.add('vp-highlight');
    setTimeout(() => el.classList.remove('vp-highlight'), 1500);
  };
  const number = () => {
    const chat = document.querySelector('#chat');
    if (!chat) return;
    let turn = 0;
    chat.querySelectorAll('.message-row').forEach((row) => {
      if (row.classList.contains('user-row')) turn += 1;
      if (!turn) return;
      const first = row.querySelector('[data-testid="user"], [data-testid="bot"]');
      for (const el of [row, first]) {
        if (el && el.dataset.turn !== String(turn)) el.dataset.turn = String(turn);
      }
    });
  };
  let lastPanel = null;
  const panel = () => {
    const vp = document.querySelector('#verdicts .vp');
    if (vp && vp !== lastPanel) { lastPanel = vp; vp.scrollTop = vp.scrollHeight; }
  };
  new MutationObserver(() => { number(); panel(); })
    .observe(document.body, {childList: true, subtree: true, characterData: true});
  document.addEventListener('click', (event) => {
    const summary = event.target.closest('#verdicts .vp-turn > summary');
    if (summary) {
      const turn = summary.parentElement.dataset.turn;
      const row = document.querySelector(`#chat .message-row.user-row[data-turn="${turn}"]`);
      if (row) { row.scrollIntoView({block: 'nearest'}); flash(row); }
      return;
    }
    if (event.target.closest('button, textarea, a')) return;
    const row = event.target.closest('#chat .message-row[data-turn]');
    if (row) {
      const card = document.querySelector(`#vp-turn-${row.dataset.turn}`);
      if (card) { card.open = true; card.scrollIntoView({block: 'nearest'}); flash(card); }
    }
  });
}
"""
