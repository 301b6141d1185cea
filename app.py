"""The chat and its JSON routes: flags -> engine -> Gradio page + FastAPI routes -> serve.

python app.py [--data PATH] [--index-dir DIR] [--model NAME_OR_PATH] [--host H] [--port P]
"""

import argparse
import html
import ipaddress
import json
import os
import sys
import tempfile
import threading
import time
import urllib.parse
import uuid
from pathlib import Path

os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
os.environ["HF_HUB_OFFLINE"] = "1"

EXIT_USAGE = 2
ALL = "All"  # the filter value that filters nothing
QUEUE_MAX = int(os.environ.get("QA_QUEUE_MAX", "64"))  # chat requests waiting beyond this get 503

CSS = """
.qa-quote { border-left: 4px solid #2563eb; margin: 0.25em 0; padding: 0.4em 0.8em;
            background: rgba(37, 99, 235, 0.06); font-size: 1.02em; }
.qa-quote:not(.qa-best) { border-left-color: #94a3b8; font-size: 0.95em; }
.qa-quote mark { background: #fde68a; color: inherit; padding: 0 0.1em; }
.qa-cite { font-size: 0.9em; margin-bottom: 0.2em; }
.qa-score { color: #64748b; font-size: 0.85em; margin-left: 0.4em; }
.qa-asked { font-size: 0.85em; color: #475569; margin-bottom: 0.8em; }
.qa-more, .qa-low { font-size: 0.85em; font-weight: 600; color: #475569; margin-top: 0.6em; }
.qa-refusal { padding: 0.4em 0; }
.qa-searched { font-size: 0.85em; font-style: italic; color: #475569; margin-bottom: 0.4em; }
"""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    from qa.engine import DEFAULT_DATA, DEFAULT_INDEX_DIR

    p = argparse.ArgumentParser(description="Ask an interview; get the interviewee's own words.")
    p.add_argument(
        "--data",
        type=Path,
        default=DEFAULT_DATA,
        help="a transcript or a folder of transcripts (default: %(default)s)",
    )
    p.add_argument(
        "--index-dir",
        type=Path,
        default=DEFAULT_INDEX_DIR,
        help="where the index is kept (default: %(default)s, or $QA_INDEX_DIR)",
    )
    p.add_argument("--model", default=None, help="minilm (default), mpnet, or a local model folder")
    p.add_argument("--host", default="127.0.0.1", help="interface to bind (default: %(default)s)")
    p.add_argument("--port", type=int, default=7860)
    p.add_argument(
        "--feedback",
        type=Path,
        default=None,
        help="where likes and dislikes are appended (default: INDEX_DIR/feedback.jsonl)",
    )
    p.add_argument("--mcp", action="store_true", help="also serve the ask function as an MCP tool")
    p.add_argument("--auth", default=os.environ.get("QA_AUTH"),
                   help="user:password required to use the app (or $QA_AUTH)")  # fmt: skip
    return p.parse_args(argv)


def examples(engine, n: int = 4) -> list[str]:
    """Example questions taken from the interviewers' own questions, one per section."""
    seen, out = set(), []
    for p in engine.passages:
        words = p.text.split()
        named = any(w[0].isupper() for w in words[1:])
        if p.role == "question" and p.text.endswith("?") and 7 <= len(words) and named and len(p.text) <= 110:
            if (p.source, p.section) not in seen:
                seen.add((p.source, p.section))
                out.append(p.text)
    return out[:n]


def describe(engine) -> str:
    from qa.render import literal

    items = []
    for t in engine.transcripts.values():
        speakers = ", ".join(literal(s) for s in t.speakers)
        sections = len({p.section for p in t.passages if p.section})
        items.append(f"<li><strong>{literal(t.title)}</strong> — {speakers}; "
                     f"{sections} sections, {len(t.passages)} sentences</li>")  # fmt: skip
    return (
        "<p>Ask a question in your own words. Every answer is made of the interview's own "
        "sentences, quoted verbatim with who said them, where and in reply to what; "
        "nothing is generated. When the interview does not address a question, it says so.</p>"
        f"<ul>{''.join(items)}</ul><p class='qa-model'>Model: {literal(engine.model_name)}</p>"
    )


def _text(message: dict) -> str:
    """A chat message's text as the user typed it: the page shows it as numeric entities."""
    content = message.get("content")
    if isinstance(content, list):
        content = " ".join(c.get("text", "") for c in content if isinstance(c, dict))
    return html.unescape(content) if isinstance(content, str) else ""


def build_ui(engine, feedback: Path, mcp: bool = False):
    import gradio as gr

    from qa.engine import QuestionError
    from qa.render import answer_html, citation_text, context_html, conversation_markdown, literal

    key_of = {t.source: key for key, t in engine.transcripts.items()}
    by_source = {t.source: t for t in engine.transcripts.values()}
    downloads = Path(tempfile.mkdtemp(prefix="qa-conversations-"))
    lock = threading.Lock()

    def context(quote) -> str:
        link = "/transcript/" + urllib.parse.quote(key_of[quote.source])
        return context_html(quote, by_source[quote.source], link)

    def respond(message: str, history: list[dict], source: str = ALL, speaker: str = ALL,
                kept: list | None = None):  # fmt: skip
        """One chat turn; the user's earlier questions come from the chat's own history, so a
        cleared chat or a new client starts a new conversation. `kept` holds the answers."""
        history, kept = list(history or []), list(kept or [])
        asked = [_text(m) for m in history if m.get("role") == "user"]
        try:
            answer = engine.ask(message, 3, None if source == ALL else source,
                                None if speaker == ALL else speaker, asked)  # fmt: skip
        except QuestionError as e:
            if isinstance(message, str) and message.strip():
                shown = message if len(message) <= 300 else message[:300] + "…"
                history.append({"role": "user", "content": literal(shown)})
            history.append({"role": "assistant", "content": literal(str(e))})
            return "", history, kept + [None]
        history.append({"role": "user", "content": literal(answer.question)})
        history.append({"role": "assistant", "content": answer_html(answer, engine.texts, context)})
        return "", history, kept + [answer]

    def keep(kept: list | None):
        """The latest best quote to copy, and the whole conversation as a Markdown file."""
        answers = [a for a in kept or [] if a is not None]
        if not answers:
            return "", None
        last = answers[-1]
        best = last.quotes[0] if last.quotes else None
        path = downloads / f"conversation-{uuid.uuid4().hex[:12]}.md"
        path.write_text(conversation_markdown(answers), encoding="utf-8")
        return (citation_text(best) if best else ""), str(path)

    def judge(data: gr.LikeData, history: list[dict], kept: list | None) -> None:
        """Append the verdict with the question and its quotes to the feedback file."""
        index = data.index if isinstance(data.index, int) else data.index[0]
        nth = sum(1 for m in (history or [])[: index + 1] if m["role"] == "assistant") - 1
        answer = (kept or [])[nth] if 0 <= nth < len(kept or []) else None
        if answer is None:
            return
        earlier = [a.question for a in kept[:nth] if a is not None]
        record = {"time": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "liked": data.liked,
                  "history": earlier, **answer.to_dict()}  # fmt: skip
        with lock:
            feedback.parent.mkdir(parents=True, exist_ok=True)
            with open(feedback, "a", encoding="utf-8") as f:
                f.write(json.dumps(record, ensure_ascii=False) + "\n")

    with gr.Blocks(title="Ask the interview", analytics_enabled=False) as demo:
        gr.HTML(f"<h1>Ask the interview</h1>{describe(engine)}")
        chat = gr.Chatbot(
            label="Quoted answers",
            height=640,
            sanitize_html=True,
            render_markdown=True,
            latex_delimiters=[],
            buttons=["copy", "copy_all"],
            feedback_options=("Like", "Dislike"),
            elem_id="chat",
        )
        kept = gr.State([])
        with gr.Row():
            box = gr.Textbox(
                placeholder="Ask about the interview, e.g. what NATO thinks of …",
                show_label=False,
                scale=8,
                elem_id="question",
                max_lines=4,
            )
            send = gr.Button("Ask", variant="primary", scale=1, elem_id="ask")
        shown = gr.Examples(
            examples=[[e] for e in examples(engine)],
            inputs=[box],
            label="Example questions (from the interviewer)",
        )
        with gr.Row():
            titles = [t.title for t in engine.transcripts.values()]
            source = gr.Dropdown(
                [ALL, *titles],
                value=ALL,
                label="Only this interview",
                elem_id="source",
                interactive=len(titles) > 1,
            )
            speaker = gr.Dropdown([ALL, *engine.speakers], value=ALL, label="Only this speaker",
                                  elem_id="speaker")  # fmt: skip
        with gr.Row():
            copy = gr.Textbox(label="Best quote with its citation", buttons=["copy"], lines=3,
                              interactive=False, elem_id="copy", scale=4)  # fmt: skip
            download = gr.DownloadButton("Download the conversation (Markdown)", elem_id="download",
                                         scale=1)  # fmt: skip
        inputs, outputs = [box, chat, source, speaker, kept], [box, chat, kept]
        shown.load_input_event.then(respond, inputs, outputs, api_visibility="private").then(
            keep, [kept], [copy, download], api_visibility="private"
        )
        for trigger in (box.submit, send.click):
            trigger(respond, inputs, outputs, api_name="ask" if trigger == box.submit else False).then(
                keep, [kept], [copy, download], api_visibility="private"
            )
        chat.like(judge, [chat, kept], None, api_visibility="private")
        chat.clear(lambda: [], None, [kept], api_visibility="private")
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
                    return {"question": str(question), "error": str(e)}

            gr.api(ask_interview, api_name="ask_interview")
    return demo


def build_app(
    engine, auth: tuple[str, str] | None = None, feedback: Path = Path("feedback.jsonl"), mcp: bool = False
):
    import gradio as gr
    from fastapi import FastAPI, Query, Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import HTMLResponse, JSONResponse

    from qa.engine import QuestionError
    from qa.render import transcript_page

    api = FastAPI(title="Ask the interview", docs_url=None, redoc_url=None, openapi_url=None)

    @api.exception_handler(RequestValidationError)
    async def bad_request(_request: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse({"error": "invalid request parameters"}, status_code=400)

    @api.get("/healthz")
    def healthz() -> dict:
        return {"status": "ok", "passages": len(engine.passages), "model": engine.model_name}

    @api.get("/transcript/{key:path}")
    def transcript(key: str) -> HTMLResponse:
        if key not in engine.transcripts:
            return HTMLResponse("<!doctype html><p>No such transcript.</p>", status_code=404)
        return HTMLResponse(transcript_page(engine.transcripts[key]))

    @api.get("/api/ask")
    def ask(
        q: str | None = None,
        k: str = "3",
        source: str | None = None,
        speaker: str | None = None,
        history: list[str] = Query(default=[]),  # noqa: B008
    ) -> JSONResponse:
        if q is None:
            return JSONResponse({"error": "missing q: /api/ask?q=your+question"}, 400)
        try:
            answer = engine.ask(q, k, source, speaker, history)
        except QuestionError as e:
            return JSONResponse({"error": str(e)}, status_code=e.status)
        return JSONResponse(answer.to_dict())

    demo = build_ui(engine, feedback, mcp)
    demo.queue(max_size=QUEUE_MAX, default_concurrency_limit=2)
    theme = gr.themes.Default(
        font=["system-ui", "Segoe UI", "Helvetica", "Arial", "sans-serif"],
        font_mono=["ui-monospace", "Menlo", "Consolas", "monospace"],
    )
    return gr.mount_gradio_app(
        api, demo, path="/", ssr_mode=False, auth=auth, theme=theme, css=CSS,
        footer_links=[], mcp_server=mcp,
    )  # fmt: skip


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from embeddings.model import ModelError
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
    try:
        engine = Engine(args.data, args.index_dir, args.model)
    except (TranscriptError, ModelError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_USAGE
    app = build_app(engine, auth, args.feedback or args.index_dir / "feedback.jsonl", args.mcp)
    import uvicorn

    print(f"Ask the interview: http://{args.host}:{args.port}/", file=sys.stderr)
    try:
        uvicorn.run(app, host=args.host, port=args.port, log_level="warning", timeout_graceful_shutdown=3)
    except (OSError, SystemExit) as e:
        print(f"error: cannot serve on {args.host}:{args.port} ({e})", file=sys.stderr)
        return EXIT_USAGE
    return 0


if __name__ == "__main__":
    sys.exit(main())
