"""The chat and its JSON routes: flags -> engine -> Gradio page + FastAPI routes -> serve.

python app.py [--data PATH] [--index-dir DIR] [--model NAME_OR_PATH] [--host H] [--port P]
"""

import argparse
import base64
import hmac
import html
import ipaddress
import json
import os
import sys
import threading
import time
import urllib.parse
import uuid
from collections import OrderedDict
from collections.abc import Iterable
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


def verdict_record(liked: object, index: object, history: object, kept: object) -> dict | None:
    """The feedback record for a like event, or None when it is not a real verdict on a real
    answer of this conversation: any client can send this event with anything in it."""
    from qa.feedback import record, verdict

    try:
        liked = verdict(liked)
    except ValueError:
        return None
    index = index[0] if isinstance(index, list | tuple) and index else index
    if not (isinstance(index, int) and isinstance(history, list) and isinstance(kept, list)):
        return None
    if not 0 <= index < len(history):
        return None
    nth = sum(1 for m in history[: index + 1] if isinstance(m, dict) and m.get("role") == "assistant") - 1
    answer = kept[nth] if 0 <= nth < len(kept) else None
    if answer is None:
        return None
    return record(answer, liked, [a.question for a in kept[:nth] if a is not None])


def choices(engine) -> tuple:
    """The filters' choices as the folder is now: files may have come and gone since start."""
    import gradio as gr

    titles = [t.title for t in engine.transcripts.values()]
    return (gr.Dropdown(choices=[ALL, *titles], interactive=len(titles) > 1),
            gr.Dropdown(choices=[ALL, *engine.speakers]))  # fmt: skip


class Exports:
    """Each open conversation's answers, kept in memory for its Markdown download: nothing is
    written to disk, and the oldest conversations are let go beyond a bound."""

    MAX_CONVERSATIONS = 512
    MAX_ANSWERS = 200  # the latest ones of a longer conversation

    def __init__(self) -> None:
        self._answers: OrderedDict[str, list] = OrderedDict()
        self._lock = threading.Lock()

    def new(self) -> str:
        return uuid.uuid4().hex

    def put(self, token: str, answers: list) -> None:
        if not token:
            return
        with self._lock:
            self._answers[token] = answers[-self.MAX_ANSWERS :]
            self._answers.move_to_end(token)
            while len(self._answers) > self.MAX_CONVERSATIONS:
                self._answers.popitem(last=False)

    def get(self, token: str) -> list | None:
        with self._lock:
            return self._answers.get(token)

    @staticmethod
    def link(token: str) -> str:
        return (f'<a id="download" class="qa-download" href="/conversation/{token}.md" '
                'download="conversation.md">Download the conversation (Markdown)</a>')  # fmt: skip


def build_ui(engine, feedback, exports: Exports, mcp: bool = False):
    import gradio as gr

    from qa.engine import QuestionError
    from qa.render import answer_html, citation_text, context_html, literal

    def context(quote) -> str:
        state = engine.state
        key = state.keys.get(quote.source)
        if key is None or state.transcripts[key].text[quote.start : quote.end] != quote.text:
            return ""  # the file changed between the answer and this: no context to show
        link = "/transcript/" + urllib.parse.quote(key)
        return context_html(quote, state.transcripts[key], link)

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
        history.append({"role": "assistant", "content": answer_html(answer, context)})
        return "", history, kept + [answer]

    def keep(kept: list | None, token: str):
        """The latest best quote to copy, and the link that downloads the whole conversation."""
        answers = [a for a in kept or [] if a is not None]
        exports.put(token, answers)
        if not answers:
            return "", ""
        best = answers[-1].quotes[0] if answers[-1].quotes else None
        return (citation_text(best) if best else ""), exports.link(token) if token else ""

    def judge(data: gr.LikeData, history: list[dict], kept: list | None) -> None:
        """Append the verdict with the question and its quotes to the feedback file."""
        entry = verdict_record(data.liked, data.index, history, kept)
        why = feedback.append(entry) if entry else ""
        if why:
            print(f"warning: feedback not kept: {why}", file=sys.stderr)

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
        token = gr.State("")  # names this conversation's export; set when the page loads
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
            download = gr.HTML("", elem_id="export", scale=1)
        inputs, outputs = [box, chat, source, speaker, kept], [box, chat, kept]
        demo.load(exports.new, None, [token], api_visibility="private")
        demo.load(lambda: choices(engine), None, [source, speaker], api_visibility="private")
        shown.load_input_event.then(respond, inputs, outputs, api_visibility="private").then(
            keep, [kept, token], [copy, download], api_visibility="private"
        )
        for trigger in (box.submit, send.click):
            trigger(respond, inputs, outputs, api_name="ask" if trigger == box.submit else False).then(
                keep, [kept, token], [copy, download], api_visibility="private"
            )
        chat.like(judge, [chat, kept], None, api_visibility="private")
        chat.clear(lambda: [], None, [kept], api_visibility="private").then(
            keep, [kept, token], [copy, download], api_visibility="private"
        )
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


def build_app(
    engine, auth: tuple[str, str] | None = None, feedback: Path = Path("feedback.jsonl"), mcp: bool = False,
    allowed_hosts: Iterable[str] = (), trust_forwarded: bool = False,
):  # fmt: skip
    import gradio as gr
    from fastapi import Depends, FastAPI, HTTPException, Query, Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import HTMLResponse, JSONResponse, Response

    from qa.engine import QuestionError
    from qa.feedback import FeedbackLog
    from qa.render import conversation_markdown, transcript_page

    api = FastAPI(title="Ask the interview", docs_url=None, redoc_url=None, openapi_url=None)
    exports = Exports()
    gradio_app = None  # set once mounted: its login cookies admit a user to these routes too

    def signed_in(request: Request) -> None:
        """With --auth, these routes want what the page wants: Gradio's login cookie, or the same
        user and password as HTTP Basic credentials (for scripts)."""
        if auth is None:
            return
        kind, _, encoded = request.headers.get("authorization", "").partition(" ")
        if kind.lower() == "basic":
            try:
                user, _, password = base64.b64decode(encoded, validate=True).decode("utf-8").partition(":")
            except (ValueError, UnicodeDecodeError):
                user, password = "", ""
            if hmac.compare_digest(user.encode(), auth[0].encode()) and hmac.compare_digest(
                password.encode(), auth[1].encode()
            ):
                return
        if gradio_app is None:
            raise HTTPException(503, "starting")
        cookies = [f"access-token-{gradio_app.cookie_id}", f"access-token-unsecure-{gradio_app.cookie_id}"]
        if not any(request.cookies.get(c) in gradio_app.tokens for c in cookies):
            raise HTTPException(401, "sign in first: use the page's login, or HTTP Basic credentials",
                                headers={"WWW-Authenticate": 'Basic realm="Ask the interview"'})  # fmt: skip

    @api.exception_handler(HTTPException)
    async def refused(_request: Request, exc: HTTPException) -> JSONResponse:
        return JSONResponse({"error": str(exc.detail)}, exc.status_code, headers=exc.headers)

    @api.exception_handler(RequestValidationError)
    async def bad_request(_request: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse({"error": "invalid request parameters"}, status_code=400)

    @api.api_route("/healthz", methods=["GET", "HEAD"])
    def healthz() -> dict:
        pending = engine.pending
        return {"status": "re-indexing" if pending else "ok", "pending": pending,
                "passages": len(engine.passages), "model": engine.model_name}  # fmt: skip

    @api.api_route("/transcript/{key:path}", methods=["GET", "HEAD"], dependencies=[Depends(signed_in)])
    def transcript(key: str) -> HTMLResponse:
        transcripts = engine.transcripts
        if key not in transcripts:
            return HTMLResponse("<!doctype html><p>No such transcript.</p>", status_code=404)
        return HTMLResponse(transcript_page(transcripts[key]))

    @api.api_route("/conversation/{token}.md", methods=["GET", "HEAD"], dependencies=[Depends(signed_in)])
    def conversation(token: str) -> Response:
        answers = exports.get(token)
        if answers is None:
            return JSONResponse({"error": "no such conversation (it ended or the app restarted)"}, 404)
        disposition = {"Content-Disposition": 'attachment; filename="conversation.md"'}
        return Response(conversation_markdown(answers), media_type="text/markdown; charset=utf-8",
                        headers=disposition)  # fmt: skip

    @api.api_route("/api/ask", methods=["GET", "HEAD"], dependencies=[Depends(signed_in)])
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

    @api.api_route("/api/ask", methods=["POST", "PUT", "PATCH", "DELETE"])
    def ask_other_method() -> JSONResponse:
        allow = {"Allow": "GET, HEAD"}
        return JSONResponse({"error": "use GET /api/ask?q=your+question"}, 405, headers=allow)

    demo = build_ui(engine, FeedbackLog(feedback), exports, mcp)
    demo.queue(max_size=QUEUE_MAX, default_concurrency_limit=2)
    theme = gr.themes.Default(
        font=["system-ui", "Segoe UI", "Helvetica", "Arial", "sans-serif"],
        font_mono=["ui-monospace", "Menlo", "Consolas", "monospace"],
    )
    app = gr.mount_gradio_app(
        api, demo, path="/", ssr_mode=False, auth=auth, theme=theme, css=CSS,
        footer_links=[], mcp_server=mcp,
    )  # fmt: skip
    gradio_app = next(r.app for r in api.routes if getattr(r, "path", None) == "")
    return HostGuard(app, allowed_hosts, trust_forwarded)


def watch(engine, every: float) -> threading.Thread:
    """Look for changed transcripts every `every` seconds and re-index them in the background."""

    def loop() -> None:
        while True:
            time.sleep(every)
            try:
                engine.refresh()
            except Exception as e:  # noqa: BLE001 - a failed refresh keeps serving the last view
                print(f"warning: re-indexing failed, still serving the last index: {e}", file=sys.stderr)

    thread = threading.Thread(target=loop, name="qa-watch", daemon=True)
    thread.start()
    return thread


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
    app = build_app(engine, auth, args.feedback or args.index_dir / "feedback.jsonl", args.mcp,
                    [*args.allowed_host, args.host], args.trust_forwarded)  # fmt: skip
    if args.watch > 0:
        watch(engine, args.watch)
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
