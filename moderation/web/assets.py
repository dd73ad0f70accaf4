"""The page's CSS and its one script (handed to `Blocks.launch`, Gradio 6's place for them).

CSS: the verdict panel takes the chat's height and scrolls on its own; its colours come
from the theme's CSS variables, so the score bar reads in light and dark mode alike;
on a phone the chat is shorter, the verdicts follow right under it, and a one-line copy of
the newest card's title sits above the message box (`#live-verdict`), so the running
turn's verdict stays in view while a reply streams.

The script only decorates what Gradio rendered, with no state of its own:
- it numbers the chat's messages by turn (a user message starts a turn; "Turn N" is
  CSS-generated text on the user's bubble only, so copying a message never copies it);
- it makes a note without a body ("Length limit reached") a plain line: no arrow, no copy;
- it folds a long message (LONG_MESSAGE characters or more) behind "Show all";
- it keeps the panel scrolled to the newest turn, and links the two: clicking a chat
  message opens its turn's card, clicking a card's title shows its turn in the chat (the
  card stays open; its ▸ marker, or Enter on the title, opens and closes it);
- the keyboard: the message box has the focus from the start without scrolling the page,
  Escape presses Stop, focus returns to the box after Send, Stop or an example, Enter in
  the inline edit box submits the edit (Shift+Enter adds a line), and the edit box scrolls
  into view when it opens;
- the box counts characters from COUNT_FROM on, against the limit (MAX_MESSAGE_CHARS);
- the saved conversations' list reads "Saved conversations" while none is chosen.
"""

from moderation.schema import MAX_MESSAGE_CHARS

LONG_MESSAGE = 1500  # characters from which a chat message is folded
COUNT_FROM = MAX_MESSAGE_CHARS // 4  # characters from which the box shows its counter

PAGE_CSS = """
#verdicts .vp{max-height:470px;overflow-y:auto;padding-right:4px}
.vp-turn{border:1px solid var(--border-color-primary);border-radius:8px;padding:6px 8px;margin-bottom:6px}
.vp-turn>summary{cursor:pointer;font-weight:600;white-space:nowrap;overflow:hidden;text-overflow:ellipsis}
.vp-turn.vp-flagged .vp-worst{color:#b91c1c}.dark .vp-turn.vp-flagged .vp-worst{color:#f87171}
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
#chat .user-row [data-testid="user"][data-turn]::before{content:"Turn " attr(data-turn);display:block;font-size:.7em;
  color:var(--body-text-color-subdued);margin-bottom:2px}
#chat .message-row[data-turn]{cursor:pointer}
#chat .vp-plain-note .arrow,#chat .vp-plain-note + .message-buttons button[aria-label="Copy message"]{display:none}
#chat .vp-plain-note .title{cursor:default}
#chat .vp-long:not(.vp-expanded) .message-content{max-height:12em;overflow:hidden;
  -webkit-mask-image:linear-gradient(180deg,#000 70%,transparent);
  mask-image:linear-gradient(180deg,#000 70%,transparent)}
.vp-more{display:block;margin-top:4px;font-size:.85em;color:var(--color-accent);cursor:pointer;background:none;border:0;padding:0}
#char-count{font-size:.8em;color:var(--body-text-color-subdued);text-align:right;margin-top:2px}
#char-count.vp-over{color:#b91c1c;font-weight:600}.dark #char-count.vp-over{color:#f87171}
#live-verdict{display:none}#live-verdict .vp-live{cursor:pointer}
#system-prompt textarea:disabled{background:var(--background-fill-secondary);border-style:dashed;cursor:not-allowed;
  color:var(--body-text-color-subdued)}
#notice{border-left:4px solid var(--color-accent);padding-left:10px}
#action-row{flex-wrap:wrap;gap:6px}#action-row button{min-width:0}
#action-row>#conversations{flex:3 1 280px;flex-wrap:nowrap;gap:6px;margin:0}
#conversation-list input{padding-right:28px;text-overflow:ellipsis}
.vp-heading{margin:0 0 4px}.vp-heading .hiw-open{font-size:.6em;font-weight:400;margin-left:8px}
@media (max-width: 640px){
  #chat{height:40vh !important;min-height:260px}
  #verdicts .vp{max-height:60vh}
  #notice{font-size:.9em}
  #live-verdict:has(.vp-live:not(:empty)){display:block}
  #live-verdict{margin-top:-8px}
  #chat-column:has(#live-verdict .vp-live:not(:empty)) #chat{height:calc(40vh - 56px) !important}
  #live-verdict .vp-live{font-size:.85em;padding:4px 8px;border:1px solid var(--border-color-primary);
    border-radius:8px;white-space:nowrap;overflow:hidden;text-overflow:ellipsis}
}
@media (max-width: 480px){
  #settings .min_value,#settings .max_value{display:inline}
}
"""

PAGE_JS = (
    """
() => {
  const LONG = __LONG__, COUNT_FROM = __COUNT_FROM__, MAX = __MAX__;
  const box = () => document.querySelector('#message textarea');
  const focusBox = () => { const b = box(); if (b) b.focus({preventScroll: true}); };
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
  const tidy = () => {
    document.querySelectorAll('#chat .message-row').forEach((row) => {
      const note = row.querySelector('.thought-group');  // a note: its title, and a body when it has one
      const bare = !!note && !!note.querySelector(':scope > .title[aria-busy="true"]');  // Gradio: no body
      if (row.classList.contains('vp-plain-note') !== bare) row.classList.toggle('vp-plain-note', bare);
      const content = row.querySelector('.message-content');
      if (!content || note) return;
      const long = content.innerText.length >= LONG;
      const message = content.parentElement;
      if (long && !message.classList.contains('vp-long')) {
        message.classList.add('vp-long');
        const more = document.createElement('button');
        more.className = 'vp-more';
        more.textContent = 'Show all';
        more.addEventListener('click', (event) => {
          event.stopPropagation();
          more.textContent = message.classList.toggle('vp-expanded') ? 'Show less' : 'Show all';
        });
        message.appendChild(more);
      }
    });
  };
  const editOpened = () => {
    const edit = document.querySelector('#chat textarea.edit-textarea');
    if (edit && !edit.dataset.seen) {
      edit.dataset.seen = '1';
      edit.scrollIntoView({block: 'nearest'});
      edit.focus({preventScroll: true});
    }
  };
  const live = () => {
    const line = document.querySelector('#live-verdict .vp-live');
    const title = document.querySelector('#verdicts .vp-turn:last-of-type > summary');
    const text = title ? title.innerText.trim() : '';
    if (line && line.textContent !== text) line.textContent = text;
  };
  const count = () => {
    const b = box();
    if (!b) return;
    let counter = document.querySelector('#char-count');
    if (!counter) {
      counter = document.createElement('div');
      counter.id = 'char-count';
      counter.setAttribute('aria-live', 'polite');
      b.closest('#message').appendChild(counter);
    }
    const n = b.value.length;
    counter.textContent = n >= COUNT_FROM ? `${n.toLocaleString('en')} / ${MAX.toLocaleString('en')} characters` : '';
    counter.classList.toggle('vp-over', n > MAX);
  };
  let lastPanel = null, focused = false;
  const panel = () => {
    const vp = document.querySelector('#verdicts .vp');
    if (vp && vp !== lastPanel) { lastPanel = vp; vp.scrollTop = vp.scrollHeight; }
  };
  const named = () => {  // the saved conversations' list says what it is while none is chosen
    const list = document.querySelector('#conversation-list input');
    if (list && !list.placeholder) {
      list.placeholder = 'Saved conversations';
      list.setAttribute('aria-label', 'Saved conversations');
    }
  };
  new MutationObserver(() => {
    number(); tidy(); panel(); editOpened(); live(); named();
    if (!focused && box()) { focused = true; focusBox(); count(); }
  }).observe(document.body, {childList: true, subtree: true, characterData: true});
  document.addEventListener('input', (event) => { if (event.target === box()) count(); });
  document.addEventListener('keydown', (event) => {
    if (event.key === 'Escape') {
      const stop = document.querySelector('#stop');
      if (stop && stop.offsetParent !== null) { event.preventDefault(); stop.click(); focusBox(); }
      return;
    }
    const edit = event.target.closest && event.target.closest('#chat textarea.edit-textarea');
    if (edit && event.key === 'Enter' && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      const row = edit.closest('.message-row');
      const buttons = row && row.nextElementSibling;
      const submit = [row, buttons].filter(Boolean).map((el) => el.querySelector('button[aria-label="Submit"]'))
        .find(Boolean) || document.querySelector('#chat button[aria-label="Submit"]');
      if (submit) { submit.click(); focusBox(); }
    }
  });
  document.addEventListener('click', (event) => {
    if (event.target.closest('#stop, #send, #chat .example, #chat button[aria-label="Submit"]')) {
      setTimeout(focusBox, 0);  // after Gradio swaps Send and Stop, or empties the chat's examples
      return;
    }
    if (event.target.closest('#live-verdict')) {
      const card = document.querySelector('#verdicts .vp-turn:last-of-type');
      if (card) { card.open = true; card.scrollIntoView({block: 'nearest'}); flash(card); }
      return;
    }
    const summary = event.target.closest('#verdicts .vp-turn > summary');
    if (summary) {
      const card = summary.parentElement;
      if (event.detail === 0 || event.offsetX < 18) return;  // the keyboard, or the ▸ marker: open or close
      if (card.open) event.preventDefault();  // finding the message keeps the card open
      const row = document.querySelector(`#chat .message-row.user-row[data-turn="${card.dataset.turn}"]`);
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
""".replace("__LONG__", str(LONG_MESSAGE))
    .replace("__COUNT_FROM__", str(COUNT_FROM))
    .replace("__MAX__", str(MAX_MESSAGE_CHARS))
)
