"""The chat and its JSON routes: flags -> engine -> Gradio page + FastAPI routes -> serve.

python app.py [--data PATH] [--index-dir DIR] [--model NAME_OR_PATH] [--host H] [--port P]
"""

import argparse
import base64
import hmac
import ipaddress
import json
import os
import sys
import threading
import time
from collections.abc import Iterable
from pathlib import Path

EXIT_USAGE = 2
MAX_UPLOAD = 5_000_000  # bytes per file added from the page (qa.uploads.MAX_BYTES)
QUEUE_MAX = 64  # chat requests waiting beyond this are turned away at once ($QA_QUEUE_MAX)
# Request bodies: a chat turn carries the conversation shown so far; an upload up to four files.
MAX_BODY = 8_000_000  # $QA_MAX_BODY
MAX_UPLOAD_BODY = 21_000_000  # $QA_MAX_UPLOAD_BODY
MAX_EXPORT = 2_000_000  # bytes of a conversation's Markdown download: its oldest answers go first
# What Gradio received and no event came for (anyone can POST to its upload route) is deleted:
SWEEP_EVERY = 30.0  # seconds ($QA_INCOMING_SWEEP)
INCOMING_MAX_AGE = 300  # seconds a received file waits for its event ($QA_INCOMING_MAX_AGE)
INCOMING_MAX = 50_000_000  # bytes the folder may hold; the oldest go first ($QA_INCOMING_MAX_BYTES)


def setting(name: str, default: float) -> float:
    """A number from the environment, read in this one place; the default when unset or unreadable."""
    try:
        return float(os.environ.get(name, default))
    except ValueError:
        return default


def queue_max() -> int:
    return int(setting("QA_QUEUE_MAX", QUEUE_MAX))


CSS = """
/* Gradio scopes this sheet and breaks a ".dark" selector list after its first selector: one
   selector per ".dark" rule. */
#chat .prose.chatbot.md { opacity: 1; }
#intro h1 { margin: 0 0 0.2em; font-size: 1.5em; }
#intro p { margin: 0; }
/* One scroll: the conversation grows in the page, and the question box stays at the bottom of
   the screen, where thumbs are. */
#chat { height: auto !important; max-height: none !important; }
#chat .bubble-wrap { overflow: visible !important; height: auto !important; max-height: none !important; }
#chat .scroll-down-button-container { display: none !important; }
#chat [data-testid="user"] { scroll-margin-top: 0.75em; }
#ask-row { position: sticky; bottom: 0; z-index: 20; background: var(--body-background-fill);
           padding: 0.5em 0; margin: 0; box-shadow: 0 -8px 10px -10px rgba(0, 0, 0, 0.5); }
.message-row:has(.qa-note) + .message-buttons { display: none !important; }
.qa-quote { border-left: 4px solid #1d4ed8; margin: 0.25em 0; padding: 0.4em 0.8em;
            background: rgba(37, 99, 235, 0.06); font-size: 1.02em; }
.qa-quote:not(.qa-best) { border-left-color: #64748b; font-size: 0.97em; }
.qa-quote mark, .qa-context mark { background: #fde68a; color: #111827; padding: 0 0.1em; }
.qa-quote.qa-maybe { border-left: 4px dashed #64748b; background: transparent; }
.qa-quote.qa-maybe mark { background: transparent; color: inherit; text-decoration: underline dotted 2px; }
.qa-unsure-head { border: 2px dashed #64748b; border-radius: 6px; padding: 0.3em 0.6em;
                  margin-bottom: 0.4em; }
.qa-unsure-head::before { content: "? "; font-weight: 700; }
.qa-cite { font-size: 0.92em; margin-bottom: 0.2em; }
.qa-cite a.qa-open { color: inherit; text-decoration: underline; text-underline-offset: 2px; }
.qa-cite a.qa-open:hover { text-decoration-thickness: 2px; }
.qa-asked, .qa-searched { font-size: 0.9em; color: #374151 !important; margin-bottom: 0.6em; }
.qa-searched { font-style: italic; }
.qa-answer details > summary { cursor: pointer; font-size: 0.92em; font-weight: 600; color: #1e3a8a;
                               margin: 0.4em 0; }
.qa-refusal, .qa-note { padding: 0.3em 0; }
.qa-tools { margin-top: 0.4em; }
.qa-copy, .qa-alone, .qa-remove, .qa-panel-bar button { font: inherit; font-size: 0.88em; font-style: normal;
    padding: 0.15em 0.6em; border: 1px solid currentColor; border-radius: 6px; background: transparent;
    color: inherit; cursor: pointer; }
.dark .qa-quote { border-left-color: #93c5fd; background: rgba(147, 197, 253, 0.1); }
.dark .qa-quote:not(.qa-best) { border-left-color: #94a3b8; }
.dark .qa-quote.qa-maybe { background: transparent; }
.dark .qa-quote mark { background: #854d0e; color: #ffffff; }
.dark .qa-context mark { background: #854d0e; color: #ffffff; }
.dark .qa-quote.qa-maybe mark { background: transparent; color: inherit; }
.dark .qa-asked { color: #d1d5db !important; }
.dark .qa-searched { color: #d1d5db !important; }
.dark .qa-answer details > summary { color: #bfdbfe; }
#question textarea:focus-visible, .qa-download:focus-visible, #qa-panel:focus-visible,
button:focus-visible, summary:focus-visible, a:focus-visible { outline: 3px solid #2563eb;
                                                                outline-offset: 2px; }
.qa-download { display: inline-block; padding: 0.35em 0.8em; border: 1px solid currentColor;
               border-radius: 6px; text-decoration: none; font-size: 0.9em; }
.qa-example { white-space: normal !important; text-align: left !important; }
#upload-status:empty { display: none; }
.qa-loaded { margin: 0 0 0.5em; padding-left: 1.2em; }
"""

PANEL_CSS = """
/* The source panel: beside the chat on a wide screen, below it on a phone. */
#qa-panel { position: fixed; z-index: 50; top: 0; right: 0; bottom: 0; width: min(36rem, 40vw);
            display: flex; flex-direction: column; background: var(--body-background-fill, #fff);
            color: var(--body-text-color, #111827); border-left: 1px solid #94a3b8;
            box-shadow: -4px 0 16px rgba(0, 0, 0, 0.15); }
#qa-panel[hidden] { display: none; }
.qa-panel-bar { display: flex; align-items: center; justify-content: space-between; gap: 0.5em;
                padding: 0.5em 1em; border-bottom: 1px solid #94a3b8; font-weight: 600; }
#qa-panel-body { overflow-y: auto; padding: 0 1em 1em; line-height: 1.55; flex: 1; }
#qa-panel-body h2 { font-size: 1.1em; margin: 0.6em 0; }
#qa-panel-body h3 { font-size: 1em; margin: 1em 0 0.3em; }
#qa-panel-body .qa-turn.question { opacity: 0.9; }
#qa-panel-body a { color: inherit; }
mark.qa-here { outline: 2px solid #b45309; }
.qa-sr-only { position: absolute; width: 1px; height: 1px; overflow: hidden; clip: rect(0 0 0 0);
              white-space: nowrap; }
body.qa-panel-open .gradio-container { margin-right: min(36rem, 40vw) !important;
                                       max-width: calc(100vw - min(36rem, 40vw)) !important; }
@media (max-width: 720px) {
  /* On a phone the question box is always at the bottom of the screen, where thumbs are. */
  #ask-row { position: fixed !important; left: 0; right: 0; bottom: 0; padding: 0.5em 1rem !important; }
  .gradio-container { padding-bottom: 9rem !important; }
  #qa-panel { top: auto; left: 0; width: auto; height: 55vh; border-left: 0; border-top: 1px solid #94a3b8;
              box-shadow: 0 -4px 16px rgba(0, 0, 0, 0.25); }
  body.qa-panel-open .gradio-container { margin-right: 0 !important; max-width: none !important;
                                         padding-bottom: 55vh; }
}
"""

# The page's behaviour that Gradio has no words for: the source panel, the copy and "ask it on
# its own" buttons inside answers, plain-text labels for answers, the scroll after an answer.
SCRIPT = """<script>
(() => {
  const $ = (s, root = document) => root.querySelector(s);
  let opener = null, scrolled = 0;
  function say(text) {
    let live = $('#qa-live');
    if (!live) {
      live = document.createElement('div');
      live.id = 'qa-live'; live.className = 'qa-sr-only'; live.setAttribute('aria-live', 'polite');
      document.body.appendChild(live);
    }
    if (live) { live.textContent = ''; setTimeout(() => { live.textContent = text; }, 50); }
  }
  function panel() {
    let p = $('#qa-panel');
    if (p) return p;
    p = document.createElement('aside');
    p.id = 'qa-panel'; p.hidden = true; p.tabIndex = -1;
    p.setAttribute('aria-labelledby', 'qa-panel-title');
    p.innerHTML = '<div class="qa-panel-bar"><span>In the transcript</span>' +
      '<button type="button" id="qa-panel-close">Close (Esc)</button></div><div id="qa-panel-body"></div>';
    document.body.appendChild(p);
    $('#qa-panel-close').addEventListener('click', close);
    return p;
  }
  async function open(link) {
    const url = new URL(link.href, location.href);
    const key = url.pathname.replace(/^\\/transcript\\//, '');
    const at = url.hash.replace(/^#p-/, '');
    const response = await fetch('/context/' + key + '?at=' + encodeURIComponent(at));
    if (!response.ok) { window.open(link.href, '_blank', 'noopener'); return; }
    const p = panel(), body = $('#qa-panel-body');
    if (p.hidden) { opener = link; scrolled = window.scrollY; }
    body.innerHTML = await response.text();
    p.hidden = false;
    document.body.classList.add('qa-panel-open');
    const here = $('#qa-here', body);
    if (here) body.scrollTop = here.offsetTop - body.clientHeight / 3;
    // The quote stays in view: above the panel on a phone, beside it (the chat got narrower) on
    // a wide screen.
    const cite = link.closest('.qa-cite') || link, quote = cite.previousElementSibling || cite;
    const top = p.getBoundingClientRect().top, row = $('#ask-row');
    const floor = top > 0 ? top : (row ? row.getBoundingClientRect().top : window.innerHeight);
    const over = cite.getBoundingClientRect().bottom - floor + 8;
    if (over > 0) window.scrollBy(0, over);
    else if (quote.getBoundingClientRect().top < 0) window.scrollBy(0, quote.getBoundingClientRect().top - 8);
    p.focus({preventScroll: true});
    say('The quoted sentence is shown in its transcript. Press Escape to close.');
  }
  function close() {
    const p = $('#qa-panel');
    if (!p || p.hidden) return;
    p.hidden = true;
    document.body.classList.remove('qa-panel-open');
    window.scrollTo(0, scrolled);
    if (opener && opener.isConnected) opener.focus({preventScroll: true});
  }
  async function copy(button) {
    const text = $('.qa-plain', button.parentElement).textContent;
    try { await navigator.clipboard.writeText(text); }
    catch (e) {
      const area = document.createElement('textarea');
      area.value = text; document.body.appendChild(area); area.select();
      document.execCommand('copy'); area.remove();
    }
    button.textContent = 'Copied';
    say('The answer is copied as text.');
    setTimeout(() => { button.textContent = 'Copy this answer'; }, 2000);
  }
  document.addEventListener('click', (e) => {
    const link = e.target.closest('a.qa-open');
    if (link && !(e.ctrlKey || e.metaKey || e.shiftKey || e.altKey || e.button)) {
      e.preventDefault(); e.stopPropagation(); open(link); return;
    }
    const button = e.target.closest('button.qa-copy, button.qa-alone, button.qa-remove');
    if (!button) return;
    e.stopPropagation();
    if (button.classList.contains('qa-copy')) { copy(button); return; }
    const alone = button.classList.contains('qa-alone');
    window.qaPending = $(alone ? '.qa-q' : '.qa-key', button.parentElement).textContent;
    $(alone ? '#alone button, button#alone' : '#remover button, button#remover').click();
  }, true);
  document.addEventListener('keydown', (e) => {
    if (e.key === 'Escape' && $('#qa-panel') && !$('#qa-panel').hidden) { e.preventDefault(); close(); }
  });
  // Gradio labels each answer with its raw HTML: a screen reader would read the tags. And the
  // upload status, drawn when its fold first opens, is announced when it changes.
  function label() {
    const status = $('#upload-status');
    if (status && !status.hasAttribute('aria-live')) {
      status.setAttribute('role', 'status'); status.setAttribute('aria-live', 'polite');
    }
    document.querySelectorAll('#chat [data-testid="bot"]').forEach((m) => {
      const text = 'Answer: ' + m.innerText.replace(/\\s+/g, ' ').trim().slice(0, 160);
      if (m.getAttribute('aria-label') !== text) m.setAttribute('aria-label', text);
    });
  }
  new MutationObserver(label).observe(document.documentElement,
    {subtree: true, childList: true, attributes: true, attributeFilter: ['aria-label']});
})();
</script>"""
# Outside Gradio's own sheet, which scopes every rule to its container.
HEAD = f"<style>{PANEL_CSS}</style>{SCRIPT}"

# After an answer: the newest question at the top of the screen, with its best quote and the
# citation below it, above the question box.
SHOW_NEWEST = """() => { setTimeout(() => {
    const asked = document.querySelectorAll('#chat [data-testid="user"]');
    if (!asked.length) return;
    asked[asked.length - 1].scrollIntoView({block: 'start'});
    const cites = document.querySelectorAll('#chat .qa-answer, #chat .qa-note');
    const last = cites[cites.length - 1], row = document.querySelector('#ask-row');
    const cite = last && (last.querySelector('.qa-cite') || last);
    if (cite && row) {
        const over = cite.getBoundingClientRect().bottom - row.getBoundingClientRect().top + 8;
        const room = asked[asked.length - 1].getBoundingClientRect().top - 4;
        if (over > 0) window.scrollBy(0, Math.min(over, room));
    }
}, 80); }"""
ON_LOAD = """() => {
    const log = document.querySelector('#chat [role="log"]');
    if (log) log.setAttribute('aria-label', 'Conversation');
    const q = document.querySelector('#question textarea');
    if (q) q.focus();
}"""
FOCUS_QUESTION = "() => document.querySelector('#question textarea')?.focus()"
PENDING = "() => window.qaPending || ''"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    from qa.cli import add_data_options

    p = argparse.ArgumentParser(description="Ask an interview; get the interviewee's own words.")
    add_data_options(p)
    p.add_argument("--host", default="127.0.0.1", help="interface to bind (default: %(default)s)")
    p.add_argument("--port", type=int, default=7860)
    p.add_argument(
        "--feedback",
        type=Path,
        default=None,
        help="where likes and dislikes are appended (default: INDEX_DIR/feedback.jsonl)",
    )
    p.add_argument("--uploads", type=Path, default=None,
                   help="where transcripts added from the page go (default: INDEX_DIR/uploads on a "
                        "loopback host; on any other host adding is off unless this is given)")  # fmt: skip
    p.add_argument("--mcp", action="store_true", help="also serve the ask function as an MCP tool")
    p.add_argument("--allowed-host", action="append", default=[], metavar="NAME",
                   help="a host name the app may be reached by, besides localhost and IP "
                        "addresses (repeatable); requests naming any other host get 403")  # fmt: skip
    p.add_argument("--trust-forwarded", action="store_true",
                   help="believe X-Forwarded-* headers (only behind a reverse proxy you run)")  # fmt: skip
    p.add_argument(
        "--watch",
        type=float,
        default=2.0,
        metavar="SECONDS",
        help="look for changed transcripts this often (default: %(default)s s; 0: never)",
    )
    p.add_argument("--auth", default=os.environ.get("QA_AUTH"),
                   help="user:password required to use the app (or $QA_AUTH)")  # fmt: skip
    return p.parse_args(argv)


def choices(engine) -> tuple:
    """The filters' choices as the folder is now: files may have come and gone since start."""
    import gradio as gr

    from qa.chat import ALL

    titles = [t.title for t in engine.transcripts.values()]
    return (gr.Dropdown(choices=[ALL, *titles], visible=len(titles) > 1),
            gr.Dropdown(choices=[ALL, *engine.speakers]))  # fmt: skip


def theme():
    """Gradio's default look, with a primary colour that white text can be read on (>= 4.5:1)."""
    import gradio as gr

    return gr.themes.Default(
        primary_hue="blue",
        font=["system-ui", "Segoe UI", "Helvetica", "Arial", "sans-serif"],
        font_mono=["ui-monospace", "Menlo", "Consolas", "monospace"],
    ).set(
        button_primary_background_fill="#1d4ed8",
        button_primary_background_fill_hover="#1e40af",
        button_primary_background_fill_dark="#1d4ed8",
        button_primary_background_fill_hover_dark="#1e40af",
        button_primary_text_color="#ffffff",
        button_primary_text_color_dark="#ffffff",
    )


def build_ui(talk, mcp: bool = False):
    """The page: only wiring; what each event does is `qa.chat.Chat`'s."""
    import gradio as gr

    from qa.chat import ALL, FEEDBACK_NOT_KEPT, MAX_EXAMPLES, about, intro, transcripts_html
    from qa.engine import QuestionError, question_error

    engine = talk.engine

    def like(data: gr.LikeData, messages: list[dict], answers: list) -> None:
        if talk.judge(data.liked, data.index, messages, answers):
            gr.Warning(FEEDBACK_NOT_KEPT)

    def example_buttons_now() -> list:
        shown = talk.examples
        return [gr.Button(q, visible=bool(q)) for q in (shown + [""] * MAX_EXAMPLES)[:MAX_EXAMPLES]]

    def page_now() -> tuple:
        """Everything on the page that lists the transcripts, as they are now (a visitor may
        have added or removed one since the page was drawn)."""
        talk.refresh_examples()
        return (intro(engine), transcripts_html(engine), *choices(engine), *example_buttons_now())

    with gr.Blocks(title="Ask the interview", analytics_enabled=False) as demo:
        intro_html = gr.HTML(intro(engine), elem_id="intro")
        chat = gr.Chatbot(
            label="Conversation",
            show_label=False,
            height="auto",
            min_height=72,
            autoscroll=False,
            sanitize_html=True,
            render_markdown=True,
            latex_delimiters=[],
            buttons=[],
            feedback_options=("Like", "Dislike"),
            placeholder="Your questions and their answers appear here.",
            elem_id="chat",
        )
        answers = gr.State([])  # the conversation: one Answer (or None) per turn
        token = gr.State("")  # names this conversation's export; set when the page loads
        with gr.Row(equal_height=True, elem_id="ask-row"):
            box = gr.Textbox(label="Your question", placeholder="Ask about the interview", autofocus=True,
                             max_lines=4, scale=8, elem_id="question")  # fmt: skip
            send = gr.Button("Ask", variant="primary", scale=1, min_width=80, elem_id="ask")
        with gr.Row(elem_id="examples"):
            shown = talk.examples
            example_buttons = [
                gr.Button(
                    shown[i] if i < len(shown) else "",
                    size="sm",
                    elem_classes=["qa-example"],
                    visible=i < len(shown),
                )  # fmt: skip
                for i in range(MAX_EXAMPLES)
            ]
        with gr.Row(equal_height=True):
            fresh = gr.Button("New conversation", size="sm", elem_id="new", scale=0, min_width=160)
            download = gr.HTML("", elem_id="export")
        pending = gr.Textbox(visible="hidden", elem_id="pending")  # what the page's script hands over
        alone = gr.Button("Ask on its own", visible="hidden", elem_id="alone")
        remover = gr.Button("Remove a transcript", visible="hidden", elem_id="remover")
        with gr.Accordion("Only some interviews or speakers", open=False):
            titles = [t.title for t in engine.transcripts.values()]
            source = gr.Dropdown([ALL, *titles], value=ALL, label="Only this interview", elem_id="source",
                                 visible=len(titles) > 1)  # fmt: skip
            speaker = gr.Dropdown([ALL, *engine.speakers], value=ALL, label="Only this speaker",
                                  elem_id="speaker")  # fmt: skip
        adding = bool(engine.uploads)
        label = "Transcripts: the list, and adding your own" if adding else "Transcripts"
        with gr.Accordion(label, open=False, elem_id="transcripts"):
            listing = gr.HTML(transcripts_html(engine), elem_id="loaded")
            status = gr.Markdown("", elem_id="upload-status")
            upload = gr.File(label="Add transcripts: .txt, .md, .vtt or .srt, up to 5 MB each",
                             file_count="multiple", file_types=[".txt", ".md", ".vtt", ".srt"],
                             elem_id="upload", visible=adding)  # fmt: skip
            gr.Markdown("Transcripts added here are searched and quoted for everyone who can open this "
                        "page, and anyone can remove them.", visible=adding)  # fmt: skip
        with gr.Accordion("About", open=False, elem_id="about"):
            gr.HTML(about(engine))
        inputs, outputs = [box, chat, source, speaker, answers], [box, chat, answers]
        listed = [intro_html, listing, source, speaker, *example_buttons]
        demo.load(talk.exports.new, None, [token], api_visibility="private", js=ON_LOAD)
        demo.load(page_now, None, listed, api_visibility="private", show_progress="hidden")

        def answered(event) -> None:
            event.then(talk.export, [answers, token], [download], api_visibility="private").then(
                None, None, None, js=SHOW_NEWEST
            )

        for trigger in (box.submit, send.click):
            name = "ask" if trigger == box.submit else False
            answered(trigger(talk.respond, inputs, outputs, api_name=name))
        for button in example_buttons:  # a button's value is its question
            event = button.click(talk.respond, [button, chat, source, speaker, answers], outputs,
                                 api_visibility="private")  # fmt: skip
            answered(event.then(None, None, None, js=FOCUS_QUESTION))
        ask_alone = lambda q, m, s, sp, a: talk.respond(q, m, s, sp, a, alone=True)  # noqa: E731
        answered(
            alone.click(None, None, [pending], js=PENDING, api_visibility="private").then(
                ask_alone, [pending, chat, source, speaker, answers], outputs, api_visibility="private"
            )
        )
        chat.like(like, [chat, answers], None, api_visibility="private")
        upload.upload(talk.add, [upload], [status, upload], api_visibility="private").then(
            page_now, None, listed, api_visibility="private"
        )
        remover.click(None, None, [pending], js=PENDING, api_visibility="private").then(
            talk.remove, [pending], [status], api_visibility="private"
        ).then(page_now, None, listed, api_visibility="private")
        fresh.click(lambda: ([], [], ""), None, [chat, answers, box], api_visibility="private").then(
            talk.export, [answers, token], [download], api_visibility="private"
        ).then(None, None, None, js=FOCUS_QUESTION)
        if mcp:

            def ask_interview(question: str, k: int = 3, history: list[str] | None = None) -> dict:
                """Answer a question with verbatim quotes from the loaded interview transcripts.

                Nothing is generated: every quote is the interviewee's own words, with its
                source file, character offsets, speaker, section and the question it answered.
                When the interviews do not address the question, `answered` is false.

                Args:
                    question: the question, in your own words.
                    k: how many quotes to return, 1 to 20.
                    history: earlier questions of the conversation, oldest first.
                """
                try:
                    return engine.ask(question, k, history=history or []).to_dict()
                except QuestionError as e:
                    return question_error(question, e)

            # Off the queue: Gradio's MCP server then calls it in-process, not through an HTTP
            # client of its own that would carry no login (and be refused under --auth).
            gr.api(ask_interview, api_name="ask_interview", queue=False)
    return demo


class HostGuard:
    """Refuses requests that name a host this app is not (DNS rebinding: a page elsewhere whose
    name is pointed at 127.0.0.1 could otherwise read the interviews). Allowed: IP addresses,
    localhost, and the names given. Forwarded headers are dropped unless trusted."""

    FORWARDED = {b"x-forwarded-host", b"x-forwarded-proto", b"x-forwarded-for", b"x-forwarded-port",
                 b"x-forwarded-prefix", b"forwarded"}  # fmt: skip

    def __init__(self, app, names: Iterable[str] = (), trust_forwarded: bool = False) -> None:
        self.app, self.trust_forwarded = app, trust_forwarded
        self.names = {"localhost", *(n.lower().rstrip(".") for n in names)}

    def allows(self, host: str) -> bool:
        host = host.strip().lower()
        name = host[1:].partition("]")[0] if host.startswith("[") else host.rpartition(":")[0] or host
        if host.count(":") > 1 and not host.startswith("["):  # a bare IPv6 address
            name = host
        name = name.rstrip(".")
        try:
            ipaddress.ip_address(name)
            return True
        except ValueError:
            return name in self.names or name.endswith(".localhost")

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] in ("http", "websocket"):
            headers = scope["headers"]
            host = next((v for k, v in headers if k == b"host"), None)
            if host is not None and not self.allows(host.decode("latin-1")):
                if scope["type"] == "websocket":
                    await send({"type": "websocket.close", "code": 1008})
                    return
                body = json.dumps({"error": "this app does not answer to that host name; "
                                   "start it with --allowed-host NAME to allow it"}).encode()  # fmt: skip
                await send({"type": "http.response.start", "status": 403,
                            "headers": [(b"content-type", b"application/json"),
                                        (b"content-length", str(len(body)).encode())]})  # fmt: skip
                await send({"type": "http.response.body", "body": body})
                return
            if not self.trust_forwarded:
                scope = dict(scope, headers=[(k, v) for k, v in headers if k not in self.FORWARDED])
        await self.app(scope, receive, send)


async def refuse(send, status: int, error: str, headers: Iterable[tuple[bytes, bytes]] = ()) -> None:
    """A JSON error sent straight from ASGI, before any route runs; the connection is closed
    so that a body nobody will read is not waited for."""
    body = json.dumps({"error": error}).encode()
    head = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
            (b"connection", b"close"), *headers]  # fmt: skip
    await send({"type": "http.response.start", "status": status, "headers": head})
    await send({"type": "http.response.body", "body": body})


class BodyLimit:
    """Refuses request bodies past a size with 413: at once from Content-Length, or, for a body
    sent in chunks, as soon as the bytes read pass it. No route of this app needs more, and
    Gradio's routes would otherwise read (and parse) whatever is sent, before any login."""

    def __init__(self, app, most: int, uploads: int, incoming_full=lambda: False) -> None:
        self.app, self.most, self.uploads, self.incoming_full = app, most, uploads, incoming_full

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        upload = scope["path"].rstrip("/").endswith("/gradio_api/upload")
        most = self.uploads if upload else self.most
        length = next((v for k, v in scope["headers"] if k == b"content-length"), None)
        if length is not None and (not length.strip().isdigit() or int(length) > most):
            return await refuse(send, 413, f"request body over the limit of {most:,} bytes")
        if upload and self.incoming_full():  # files sent and never added: wait for the sweep
            return await refuse(send, 503, "too many files are waiting to be added; try again in a minute",
                                [(b"retry-after", b"60")])  # fmt: skip
        seen, over, started = 0, False, False

        async def counted():
            nonlocal seen, over
            if over:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > most:
                    over = True
                    return {"type": "http.disconnect"}
            return message

        async def guarded(message) -> None:
            nonlocal started
            if not over:
                started = started or message["type"] == "http.response.start"
                await send(message)

        try:
            await self.app(scope, counted, guarded)
        except Exception:
            if not over:
                raise
        if over and not started:
            await refuse(send, 413, f"request body over the limit of {most:,} bytes")


class Login:
    """With --auth, every route but /healthz wants the user and password as HTTP Basic
    credentials (a browser asks for them itself): the page, Gradio's API, its queue, upload,
    cancel and heartbeat routes, MCP and the JSON routes alike, so no route is left out by
    accident. After a few wrong passwords from one address, each further one waits its turn
    and a second, so guessing is slow; the right password never waits."""

    OPEN = {"/healthz"}
    FREE_TRIES = 5  # wrong passwords per address per minute before they are slowed
    HEADER = [(b"www-authenticate", b'Basic realm="Ask the interview", charset="UTF-8"')]

    def __init__(self, app, user: str, password: str) -> None:
        self.app, self.user, self.password = app, user.encode(), password.encode()
        self.failures: dict[str, list[float]] = {}
        self.slow = None  # an asyncio.Lock, made inside the server's event loop

    def admits(self, headers: list[tuple[bytes, bytes]]) -> bool | None:
        """True for the right credentials, False for wrong ones, None for none at all."""
        value = next((v for k, v in headers if k == b"authorization"), None)
        if value is None:
            return None
        kind, _, encoded = value.decode("latin-1").partition(" ")
        if kind.lower() != "basic":
            return None
        try:
            user, _, password = base64.b64decode(encoded.strip(), validate=True).partition(b":")
        except ValueError:
            return False
        return hmac.compare_digest(user, self.user) & hmac.compare_digest(password, self.password)

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] not in ("http", "websocket") or scope["path"] in self.OPEN:
            return await self.app(scope, receive, send)
        verdict = self.admits(scope["headers"])
        if verdict:
            return await self.app(scope, receive, send)
        if verdict is False:
            await self.slow_down((scope.get("client") or ("?",))[0])
        if scope["type"] == "websocket":
            return await send({"type": "websocket.close", "code": 1008})
        await refuse(send, 401, "sign in first: this app wants its user and password (HTTP Basic)",
                     self.HEADER)  # fmt: skip

    async def slow_down(self, address: str) -> None:
        import asyncio

        now = time.monotonic()
        recent = [t for t in self.failures.get(address, []) if now - t < 60][-100:] + [now]
        self.failures[address] = recent
        if len(self.failures) > 10_000:  # addresses are forgotten before they fill the memory
            self.failures = {address: recent}
        if len(recent) > self.FREE_TRIES:
            self.slow = self.slow or asyncio.Lock()
            async with self.slow:
                await asyncio.sleep(1.0)


def build_app(
    engine, auth: tuple[str, str] | None = None, feedback: Path = Path("feedback.jsonl"), mcp: bool = False,
    allowed_hosts: Iterable[str] = (), trust_forwarded: bool = False,
):  # fmt: skip
    import gradio as gr
    from fastapi import FastAPI, HTTPException, Query, Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import HTMLResponse, JSONResponse, Response

    from qa.chat import Chat, Exports
    from qa.engine import QuestionError, question_error
    from qa.feedback import FeedbackLog
    from qa.render import conversation_markdown, transcript_page

    api = FastAPI(title="Ask the interview", docs_url=None, redoc_url=None, openapi_url=None)
    exports = Exports()
    talk = Chat(engine, FeedbackLog(feedback), exports)

    @api.exception_handler(HTTPException)
    async def refused(_request: Request, exc: HTTPException) -> JSONResponse:
        return JSONResponse({"error": str(exc.detail)}, exc.status_code, headers=exc.headers)

    @api.exception_handler(RequestValidationError)
    async def bad_request(_request: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse({"error": "invalid request parameters"}, status_code=400)

    @api.api_route("/healthz", methods=["GET", "HEAD"])
    def healthz() -> JSONResponse:
        pending, problem = engine.pending, engine.problem()
        status = "unavailable" if problem else "re-indexing" if pending else "ok"
        report = engine.report  # the counts `python -m qa index --json` and the start log give
        body = {"status": status, "pending": pending, "sentences": report.sentences,
                "windows": report.windows, "model": engine.model_name}  # fmt: skip
        if problem:
            body["error"] = problem
        return JSONResponse(body, 503 if problem else 200)

    @api.api_route("/transcript/{key:path}", methods=["GET", "HEAD"])
    def transcript(key: str) -> HTMLResponse:
        transcripts = engine.transcripts
        if key not in transcripts:
            return HTMLResponse("<!doctype html><p>No such transcript.</p>", status_code=404)
        return HTMLResponse(transcript_page(transcripts[key]))

    @api.api_route("/context/{key:path}", methods=["GET", "HEAD"])
    def context(key: str, at: str = "") -> HTMLResponse:
        html = talk.context(key, at)
        if html is None:
            return HTMLResponse("<p>No such sentence in the transcripts loaded now.</p>", status_code=404)
        return HTMLResponse(html)

    @api.api_route("/conversation/{token}.md", methods=["GET", "HEAD"])
    def conversation(token: str) -> Response:
        answers = exports.get(token)
        if answers is None:
            return JSONResponse({"error": "no such conversation (it ended or the app restarted)"}, 404)
        disposition = {"Content-Disposition": 'attachment; filename="conversation.md"'}
        text = conversation_markdown(answers)
        while len(text.encode("utf-8")) > MAX_EXPORT and len(answers) > 1:
            answers = answers[len(answers) // 4 or 1 :]  # the latest answers that fit
            text = conversation_markdown(answers)
        return Response(text.encode("utf-8")[:MAX_EXPORT], media_type="text/markdown; charset=utf-8",
                        headers=disposition)  # fmt: skip

    @api.api_route("/api/ask", methods=["GET", "HEAD"])
    def ask(
        q: str | None = None,
        k: str = "3",
        source: str | None = None,
        speaker: str | None = None,
        history: list[str] = Query(default=[]),  # noqa: B008
    ) -> JSONResponse:
        if q is None:
            return JSONResponse(question_error(q, "missing q: /api/ask?q=your+question"), 400)
        try:
            answer = engine.ask(q, k, source, speaker, history)
        except QuestionError as e:
            return JSONResponse(question_error(q, e), status_code=e.status)
        return JSONResponse(answer.to_dict())

    @api.api_route("/api/ask", methods=["POST", "PUT", "PATCH", "DELETE"])
    def ask_other_method() -> JSONResponse:
        allow = {"Allow": "GET, HEAD"}
        return JSONResponse({"error": "use GET /api/ask?q=your+question"}, 405, headers=allow)

    api.router.on_shutdown.append(engine.stopping)
    demo = build_ui(talk, mcp)
    demo.queue(max_size=queue_max(), default_concurrency_limit=2)
    kept = [str(Path(p).resolve()) for p in (engine.data, engine.uploads, feedback) if p is not None]
    app = gr.mount_gradio_app(
        api, demo, path="/", ssr_mode=False, theme=theme(), css=CSS, head=HEAD, footer_links=[],
        mcp_server=mcp, max_file_size=MAX_UPLOAD, allowed_paths=[], blocked_paths=kept,
    )  # fmt: skip
    # Gradio checks that a file named by an event was uploaded (is in its upload folder) only in
    # an app started by launch(); mounted, it skips the check unless told the app has launched.
    demo.has_launched = True
    if auth is not None:
        app = Login(app, *auth)
    most, uploads = int(setting("QA_MAX_BODY", MAX_BODY)), int(setting("QA_MAX_UPLOAD_BODY", MAX_UPLOAD_BODY))
    app = BodyLimit(app, most, uploads, incoming_full)
    return HostGuard(app, allowed_hosts, trust_forwarded)


def watch(engine, every: float) -> threading.Thread:
    """Look for changed transcripts every `every` seconds and re-index them in the background
    (the first look also indexes the uploads the start left for later)."""

    def look() -> None:
        try:
            engine.refresh()
        except Exception as e:  # noqa: BLE001 - a failed refresh keeps serving the last view
            print(f"warning: re-indexing failed, still serving the last index: {e}", file=sys.stderr)

    return repeat(look, every, "qa-watch")


def repeat(task, every: float, name: str) -> threading.Thread:
    """Run `task` every `every` seconds in a daemon thread."""

    def loop() -> None:
        while True:
            time.sleep(every)
            task()

    thread = threading.Thread(target=loop, name=name, daemon=True)
    thread.start()
    return thread


def incoming_full() -> bool:
    """Whether Gradio's upload folder holds its limit already ($QA_INCOMING_MAX_BYTES): then a
    flood of uploads never followed by their event cannot fill the disk between two sweeps."""
    from qa.uploads import stored_bytes

    folder = os.environ.get("GRADIO_TEMP_DIR")
    return bool(folder) and stored_bytes(Path(folder)) >= setting("QA_INCOMING_MAX_BYTES", INCOMING_MAX)


def sweep_incoming(folder: Path, max_age: float | None = None) -> None:
    """Delete what Gradio received for events that never came (qa.uploads.sweep), within the
    age and size set by $QA_INCOMING_MAX_AGE and $QA_INCOMING_MAX_BYTES."""
    from qa.uploads import sweep

    if max_age is None:
        max_age = setting("QA_INCOMING_MAX_AGE", INCOMING_MAX_AGE)
    try:
        freed = sweep(folder, max_age, int(setting("QA_INCOMING_MAX_BYTES", INCOMING_MAX)))
    except OSError as e:
        print(f"warning: cannot clean {folder} ({e.strerror or e})", file=sys.stderr)
        return
    if freed:
        print(f"removed {freed:,} bytes sent to the upload route without an event", file=sys.stderr)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def uploads_folder(given: Path | None, host: str, index_dir: Path) -> Path | None:
    """Where transcripts added from the page go, or None: adding is off. What one visitor adds,
    every visitor sees, so it is on by default only for this machine's own visitors."""
    from qa.uploads import default_folder

    return given or (default_folder(index_dir) if is_loopback(host) else None)


def main(argv: list[str] | None = None) -> int:
    from embeddings.model import ModelError, offline

    offline()
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
    args = parse_args(argv)
    from qa.cli import backend_from
    from qa.engine import Engine
    from qa.transcript import TranscriptError

    auth = None
    if args.auth:
        user, sep, password = args.auth.partition(":")
        if not (sep and user and password):
            print("error: --auth takes user:password", file=sys.stderr)
            return EXIT_USAGE
        auth = (user, password)
    if not is_loopback(args.host):
        print(f"warning: binding {args.host} exposes the app beyond this machine"
              + ("" if auth else "; consider --auth user:password"), file=sys.stderr)  # fmt: skip
    # Gradio keeps each file sent from the page until `add` has read it: in our folder, not /tmp.
    os.environ.setdefault("GRADIO_TEMP_DIR", str(Path(args.index_dir).resolve() / "incoming"))
    sweep_incoming(Path(os.environ["GRADIO_TEMP_DIR"]), 0)  # left by an earlier run: no event will come
    try:
        uploads = uploads_folder(args.uploads, args.host, args.index_dir)
        engine = Engine(args.data, args.index_dir, args.model, uploads=uploads, backend=backend_from(args),
                        defer_uploads=True)  # fmt: skip
    except (TranscriptError, ModelError, OSError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_USAGE
    print(f"index: {engine.report.line()}", file=sys.stderr)
    app = build_app(engine, auth, args.feedback or args.index_dir / "feedback.jsonl", args.mcp,
                    [*args.allowed_host, args.host], args.trust_forwarded)  # fmt: skip
    every = setting("QA_INCOMING_SWEEP", SWEEP_EVERY)
    repeat(lambda: sweep_incoming(Path(os.environ["GRADIO_TEMP_DIR"])), every, "qa-sweep")
    if args.watch > 0:
        watch(engine, args.watch)
    else:  # uploads not indexed yet were left for after the start
        threading.Thread(target=engine.refresh, name="qa-uploads", daemon=True).start()
    import uvicorn

    print(f"Ask the interview: http://{args.host}:{args.port}/", file=sys.stderr)
    try:
        uvicorn.run(app, host=args.host, port=args.port, log_level="warning", timeout_graceful_shutdown=3,
                    proxy_headers=args.trust_forwarded)  # fmt: skip
    except (OSError, SystemExit) as e:
        print(f"error: cannot serve on {args.host}:{args.port} ({e})", file=sys.stderr)
        return EXIT_USAGE
    return 0


if __name__ == "__main__":
    sys.exit(main())
