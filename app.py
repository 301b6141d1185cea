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


def queue_max() -> int:
    return int(os.environ.get("QA_QUEUE_MAX", QUEUE_MAX))


CSS = """
#intro h1 { margin: 0 0 0.2em; font-size: 1.5em; }
#intro p { margin: 0; }
.qa-answer { scroll-margin-top: 3.5em; }
.qa-quote { border-left: 4px solid #1d4ed8; margin: 0.25em 0; padding: 0.4em 0.8em;
            background: rgba(37, 99, 235, 0.06); font-size: 1.02em; }
.qa-quote:not(.qa-best) { border-left-color: #64748b; font-size: 0.97em; }
.qa-quote mark { background: #fde68a; color: #111827; padding: 0 0.1em; }
.qa-cite { font-size: 0.92em; margin-bottom: 0.2em; }
.qa-asked, .qa-searched { font-size: 0.9em; color: #374151; margin-bottom: 0.6em; }
.qa-searched { font-style: italic; }
.qa-answer details > summary { cursor: pointer; font-size: 0.92em; font-weight: 600; color: #1e3a8a;
                               margin: 0.4em 0; }
.qa-refusal, .qa-note { padding: 0.3em 0; }
.dark .qa-quote { border-left-color: #93c5fd; background: rgba(147, 197, 253, 0.1); }
.dark .qa-quote:not(.qa-best) { border-left-color: #94a3b8; }
.dark .qa-quote mark { background: #854d0e; color: #ffffff; }
.dark .qa-asked, .dark .qa-searched { color: #d1d5db; }
.dark .qa-answer details > summary { color: #bfdbfe; }
#question textarea:focus-visible, #chat [tabindex]:focus-visible, .qa-download:focus-visible,
button:focus-visible, summary:focus-visible { outline: 3px solid #2563eb; outline-offset: 2px; }
.qa-download { display: inline-block; padding: 0.35em 0.8em; border: 1px solid currentColor;
               border-radius: 6px; text-decoration: none; font-size: 0.9em; }
.qa-example { white-space: normal !important; text-align: left !important; }
#copy textarea { opacity: 1 !important; color: inherit !important; -webkit-text-fill-color: currentColor; }
"""

# After an answer: show the newest message from its top (the chat would otherwise sit at its
# bottom), and let the keyboard scroll the chat.
SHOW_NEWEST = """() => { setTimeout(() => {
    const all = document.querySelectorAll('#chat .qa-answer, #chat .qa-note');
    if (all.length) all[all.length - 1].scrollIntoView({block: 'start'});
}, 80); }"""
ON_LOAD = """() => {
    const box = document.querySelector('#chat [role="log"]') || document.querySelector('#chat .bubble-wrap');
    if (box) { box.setAttribute('tabindex', '0'); box.setAttribute('aria-label', 'Conversation'); }
    const q = document.querySelector('#question textarea');
    if (q) q.focus();
}"""


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
                   help="where transcripts added from the page go (default: INDEX_DIR/uploads)")  # fmt: skip
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

    from qa.chat import ALL, about, intro
    from qa.engine import QuestionError, question_error

    engine = talk.engine

    def like(data: gr.LikeData, messages: list[dict], answers: list) -> None:
        talk.judge(data.liked, data.index, messages, answers)

    with gr.Blocks(title="Ask the interview", analytics_enabled=False) as demo:
        gr.HTML(intro(engine), elem_id="intro")
        chat = gr.Chatbot(
            label="Conversation",
            height="52vh",
            min_height=240,
            autoscroll=False,
            sanitize_html=True,
            render_markdown=True,
            latex_delimiters=[],
            buttons=[],
            feedback_options=("Like", "Dislike"),
            elem_id="chat",
        )
        answers = gr.State([])  # the conversation: one Answer (or None) per turn
        token = gr.State("")  # names this conversation's export; set when the page loads
        with gr.Row(equal_height=True):
            box = gr.Textbox(label="Your question", placeholder="Ask about the interview", autofocus=True,
                             max_lines=4, scale=8, elem_id="question")  # fmt: skip
            send = gr.Button("Ask", variant="primary", scale=1, min_width=80, elem_id="ask")
        with gr.Row(elem_id="examples"):
            example_buttons = [gr.Button(q, size="sm", elem_classes=["qa-example"]) for q in talk.examples]
        with gr.Row(equal_height=True):
            fresh = gr.Button("New conversation", size="sm", elem_id="new", scale=0, min_width=160)
            download = gr.HTML("", elem_id="export")
        copy = gr.Textbox(label="The latest answer as text (quotes with their citations)", lines=3,
                          max_lines=8, interactive=False, buttons=["copy"], elem_id="copy")  # fmt: skip
        with gr.Accordion("Only some interviews or speakers", open=False):
            titles = [t.title for t in engine.transcripts.values()]
            source = gr.Dropdown([ALL, *titles], value=ALL, label="Only this interview", elem_id="source",
                                 visible=len(titles) > 1)  # fmt: skip
            speaker = gr.Dropdown([ALL, *engine.speakers], value=ALL, label="Only this speaker",
                                  elem_id="speaker")  # fmt: skip
        with gr.Accordion(
            "Add your own transcripts", open=False, elem_id="add", visible=bool(engine.uploads)
        ):
            upload = gr.File(label="Transcripts: .txt, .md, .vtt or .srt, up to 5 MB each",
                             file_count="multiple", file_types=[".txt", ".md", ".vtt", ".srt"],
                             elem_id="upload")  # fmt: skip
            status = gr.Markdown("", elem_id="upload-status")
        with gr.Accordion("About", open=False, elem_id="about"):
            gr.HTML(about(engine))
        inputs, outputs = [box, chat, source, speaker, answers], [box, chat, answers]
        demo.load(talk.exports.new, None, [token], api_visibility="private", js=ON_LOAD)
        demo.load(lambda: choices(engine), None, [source, speaker], api_visibility="private")

        def answered(event) -> None:
            event.then(talk.export, [answers, token], [copy, download], api_visibility="private").then(
                None, None, None, js=SHOW_NEWEST
            )

        for trigger in (box.submit, send.click):
            name = "ask" if trigger == box.submit else False
            answered(trigger(talk.respond, inputs, outputs, api_name=name))
        for button, question in zip(example_buttons, talk.examples, strict=True):
            ask_it = lambda m, s, sp, a, q=question: talk.respond(q, m, s, sp, a)  # noqa: E731
            rest = [chat, source, speaker, answers]
            answered(button.click(ask_it, rest, outputs, api_visibility="private"))
        chat.like(like, [chat, answers], None, api_visibility="private")
        upload.upload(talk.add, [upload], [status, upload], api_visibility="private").then(
            lambda: choices(engine), None, [source, speaker], api_visibility="private"
        )
        fresh.click(lambda: ([], [], ""), None, [chat, answers, box], api_visibility="private").then(
            talk.export, [answers, token], [copy, download], api_visibility="private"
        ).then(None, None, None, js="() => document.querySelector('#question textarea')?.focus()")
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

    from qa.chat import Chat, Exports
    from qa.engine import QuestionError, question_error
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
    def healthz() -> JSONResponse:
        pending, problem = engine.pending, engine.problem()
        status = "unavailable" if problem else "re-indexing" if pending else "ok"
        report = engine.report  # the counts `python -m qa index --json` and the start log give
        body = {"status": status, "pending": pending, "sentences": report.sentences,
                "windows": report.windows, "model": engine.model_name}  # fmt: skip
        if problem:
            body["error"] = problem
        return JSONResponse(body, 503 if problem else 200)

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

    demo = build_ui(Chat(engine, FeedbackLog(feedback), exports), mcp)
    demo.queue(max_size=queue_max(), default_concurrency_limit=2)
    app = gr.mount_gradio_app(
        api, demo, path="/", ssr_mode=False, auth=auth, theme=theme(), css=CSS,
        footer_links=[], mcp_server=mcp, max_file_size=MAX_UPLOAD,
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
    from embeddings.model import ModelError, offline

    offline()
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
    args = parse_args(argv)
    from qa.cli import backend_from
    from qa.engine import Engine
    from qa.transcript import TranscriptError
    from qa.uploads import default_folder

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
        uploads = args.uploads or default_folder(args.index_dir)
        engine = Engine(args.data, args.index_dir, args.model, uploads=uploads, backend=backend_from(args))
    except (TranscriptError, ModelError, OSError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_USAGE
    print(f"index: {engine.report.line()}", file=sys.stderr)
    # Gradio keeps each file sent from the page until `add` has read it: in our folder, not /tmp.
    os.environ.setdefault("GRADIO_TEMP_DIR", str(Path(args.index_dir).resolve() / "incoming"))
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
