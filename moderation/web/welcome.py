"""The first visit's explanation: what happens to a message, and what the verdict panel shows.

One gr.HTML block under the header, shown by its own script (`WELCOME_JS`, the block's
js_on_load) until the visitor presses "Got it"; the browser remembers that in localStorage
(SEEN_KEY), so it is shown once, and a "How it works" link (any `a.hiw-open` on the page:
the verdict panel's heading has one) opens it again. While it is closed the block takes no
room. The server keeps nothing of it.
"""

from __future__ import annotations

SEEN_KEY = "moderated-chat-explained"  # localStorage: "1" once the visitor has dismissed it

WELCOME_HTML = """
<section id="hiw-box" class="hiw-box" aria-label="How it works" hidden>
<strong>How this chat is moderated</strong>
<ol>
<li><b>Prompt check</b>: the guard judges your message before any of the reply is shown
(Llama Guard reads it with the last turns); a flagged message is refused.</li>
<li><b>Writing</b>: the chat model writes the reply, shown as it streams.</li>
<li><b>Checks while streaming</b>: every few tokens the guard judges the reply so far; if a
check flags it, the reply is withdrawn.</li>
<li><b>Final check</b>: the finished reply is judged as a whole.</li>
</ol>
<p><b>The verdict panel</b> has one card per turn: each check's verdict (SAFE or UNSAFE), the
categories it names, its unsafe score against the threshold line, and how long it took. The
risk strip plots the checks made while streaming; <i>Report</i> tells the operator that a
verdict was wrong. Your conversations are kept in this browser only (Saved conversations, under the chat).</p>
<button type="button" class="hiw-close">Got it</button>
</section>
"""

WELCOME_JS = f"""
const box = element.querySelector('.hiw-box');
const block = element.closest('#how-it-works') || element;
const show = (on) => {{
  box.hidden = !on;
  block.style.display = on ? '' : 'none';  // closed, it takes no room (nor the column's gap)
}};
show(!localStorage.getItem('{SEEN_KEY}'));
document.addEventListener('click', (event) => {{
  if (!event.target.closest('a.hiw-open')) return;
  event.preventDefault();
  show(box.hidden);
  if (!box.hidden) box.scrollIntoView({{block: 'nearest'}});
}});
element.querySelector('.hiw-close').addEventListener('click', () => {{
  localStorage.setItem('{SEEN_KEY}', '1');
  show(false);
  document.querySelector('#message textarea')?.focus({{preventScroll: true}});
}});
"""

WELCOME_CSS = """
.hiw-box{border:1px solid var(--border-color-primary);border-radius:8px;padding:8px 12px;margin:4px 0 8px;
  background:var(--block-background-fill);font-size:.9em}
.hiw-box ol{margin:4px 0 4px 1.2em;padding:0}.hiw-box p{margin:4px 0}
.hiw-close{border:1px solid var(--border-color-primary);border-radius:6px;padding:2px 12px;
  background:var(--button-secondary-background-fill);color:var(--button-secondary-text-color)}
"""
