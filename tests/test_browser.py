"""The chat in a real browser: headless Debian Chromium, driven by Playwright, against app.py processes.

Each module starts its app processes and the browser once; every test gets a fresh page that records
dialogs, console errors, uncaught page errors and every request it makes.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from conftest import ROOT, serve
from playwright.sync_api import Browser, Locator, Page, expect, sync_playwright
from playwright.sync_api import TimeoutError as PlaywrightTimeout

pytestmark = [pytest.mark.browser, pytest.mark.integration]

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
VIEWPORT = {"width": 1100, "height": 1000}
ANSWER_MS = 60_000  # the model answers in well under a second once loaded; CI machines can be slow
PAGE_MS = 60_000
STARTUP_S = 180
PHONE = {"width": 390, "height": 844}
LAPTOP = {"width": 1280, "height": 800}
NATO_QUESTION = "Which countries are in the process of joining NATO?"
SCREENSHOT = ROOT / "docs" / "screenshot.png"
PHONE_SCREENSHOT = ROOT / "docs" / "screenshot-phone.png"
DOCS = ROOT / "docs"
PODCAST = """Reef Talk, episode 12: a conversation with marine biologist Maya Lin

Host: Welcome, Maya. You have been diving on the Great Barrier Reef for twenty years.
Maya Lin: Twenty-two, actually. I started as a volunteer counting fish.
Host: What is the single greatest danger the reefs face today?
Maya Lin: Warming seas are the biggest threat to coral reefs. When the water stays too hot for a few weeks, \
the corals expel their algae and bleach.
Host: Can reefs recover after bleaching?
Maya Lin: Some do, if the heat does not return for a decade. Sadly it now returns every few years.
"""

PAYLOADS = [
    "<img src=x onerror=alert(1)>",
    "<script>alert(1)</script>",
    "[x](javascript:alert(1))",
    "**bold**",
]
HOSTILE_TRANSCRIPT = (
    "Interview with Eve Hacker, to Test Radio\n\n"
    '"Section <b>one</b>"\n\n'
    "- What about <script>alert(1)</script> and **bold**?\n\n"
    "- I said <img src=x onerror=alert(1)> and [x](javascript:alert(1)) and **bold** loudly.\n"
)

# Scroll every scrollable box of the chat to its top; returns how many there were.
SCROLL_CHAT_TO_TOP = """chat => {
    const boxes = [chat, ...chat.querySelectorAll('*')].filter(
        e => e.scrollHeight > e.clientHeight + 1 && /auto|scroll/.test(getComputedStyle(e).overflowY));
    boxes.forEach(e => { e.scrollTop = 0; });
    return boxes.length;
}"""

# Is the element's top (or all of it) inside the viewport and inside every clipping ancestor?
IN_VIEW = """(el, whole) => {
    const r = el.getBoundingClientRect();
    const bottom = whole ? r.bottom : r.top + 1;
    if (r.height === 0 || r.top < 0 || bottom > window.innerHeight) return false;
    for (let a = el.parentElement; a; a = a.parentElement) {
        if (!/auto|scroll|hidden/.test(getComputedStyle(a).overflowY)) continue;
        const b = a.getBoundingClientRect();
        if (r.top < b.top - 1 || bottom > b.bottom + 1) return false;
    }
    return true;
}"""


# --- processes ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    executable = shutil.which("chromium")
    if executable is None:
        if os.environ.get("CI"):
            pytest.fail("CI is set but `chromium` is not on PATH: install Debian's chromium package")
        pytest.skip("`chromium` is not on PATH (Debian: apt-get install chromium)")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=executable, headless=True, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture(scope="module")
def app(browser, tmp_path_factory, interview_index) -> Iterator[tuple[str, Path]]:
    """app.py on the packaged interview, its feedback and uploads in its own folder: one process
    for every test of this module but the hostile transcript's."""
    tmp = tmp_path_factory.mktemp("app")
    yield from ((url, tmp) for url in serve(tmp, "--index-dir", str(tmp / "index"),
                                             "--feedback", str(tmp / "feedback.jsonl"),
                                             index=interview_index))  # fmt: skip


@pytest.fixture(scope="module")
def app_url(app) -> str:
    return app[0]


@pytest.fixture(scope="module")
def hostile_app_url(browser, tmp_path_factory) -> Iterator[str]:
    """app.py on a transcript whose text is full of HTML and Markdown payloads (how they are shown
    is tested, not the model: with the stand-in embedder)."""
    tmp = tmp_path_factory.mktemp("hostile")
    data = tmp / "eve.txt"
    data.write_text(HOSTILE_TRANSCRIPT, encoding="utf-8", newline="")
    yield from serve(tmp, "--data", str(data), "--index-dir", str(tmp / "eve-index"), standin=True)


# --- pages -------------------------------------------------------------------------------------------


@dataclass
class Session:
    page: Page
    dialogs: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)

    def assert_quiet(self) -> None:
        assert self.dialogs == [], f"a dialog opened: {self.dialogs}"
        assert self.errors == [], f"console or page errors: {self.errors}"


@pytest.fixture
def session(browser: Browser, request) -> Iterator[Session]:
    """A fresh page; parametrize indirectly with {"viewport": ..., "color_scheme": ...} to change it."""
    options = {"viewport": VIEWPORT, **getattr(request, "param", {})}
    context = browser.new_context(**options)
    page = context.new_page()
    page.set_default_timeout(PAGE_MS)
    s = Session(page)

    def on_dialog(dialog) -> None:
        s.dialogs.append(f"{dialog.type}: {dialog.message}")
        dialog.dismiss()

    page.on("dialog", on_dialog)
    page.on("console", lambda m: s.errors.append(f"console: {m.text}") if m.type == "error" else None)
    page.on("pageerror", lambda e: s.errors.append(f"pageerror: {e}"))
    page.on("request", lambda r: s.requests.append(r.url))
    page.on("websocket", lambda w: s.requests.append(w.url))
    yield s
    context.close()


def open_chat(page: Page, url: str, examples: bool = True) -> None:
    page.goto(url + "/")
    page.locator("#question textarea").wait_for(state="visible")
    if examples:
        page.locator("#examples button").first.wait_for(state="visible")


def answers(page: Page) -> Locator:
    return page.locator("#chat .qa-answer")


def wait_for_answer(page: Page, index: int) -> Locator:
    answer = answers(page).nth(index)
    answer.wait_for(state="visible", timeout=ANSWER_MS)
    page.wait_for_timeout(300)  # let a late onerror/alert or console error from the new message surface
    return answer


def ask(page: Page, question: str) -> Locator:
    """Type the question, press Enter, and return the new answer."""
    before = answers(page).count()
    box = page.locator("#question textarea")
    box.fill(question)
    box.press("Enter")
    return wait_for_answer(page, before)


def user_messages(page: Page) -> Locator:
    return page.locator('#chat [data-testid="user"]')


def in_view(locator: Locator, whole: bool) -> bool:
    return locator.evaluate(IN_VIEW, whole)


# Scroll containers of the page besides the page itself.
SCROLLERS = """() => [...document.querySelectorAll('body *')].filter(e => !e.closest('#qa-panel')
    && e.scrollHeight > e.clientHeight + 1 && /auto|scroll/.test(getComputedStyle(e).overflowY))
    .map(e => e.tagName + '#' + e.id + '.' + String(e.className).slice(0, 40))"""
# What covers the element at its corners (an empty list: nothing); an inline element that wraps
# is taken at the corners of its first and last line.
COVERED = """el => { const rects = el.getClientRects(), a = rects[0], z = rects[rects.length - 1], out = [];
    for (const [x, y] of [[a.left + 2, a.top + 2], [a.right - 2, a.top + 2], [z.left + 2, z.bottom - 2],
                          [z.right - 2, z.bottom - 2]]) {
        const top = document.elementFromPoint(x, y);
        if (!top || !(el === top || el.contains(top)))
            out.push(top ? top.tagName + '.' + top.className : 'nothing');
    }
    return out; }"""


def axe_serious(page: Page) -> list:
    from axe_playwright_python.sync_playwright import Axe

    violations = Axe().run(page).response["violations"]
    return [(v["id"], [n["target"] for n in v["nodes"]][:3]) for v in violations
            if v["impact"] in ("serious", "critical")]  # fmt: skip


# --- tests -------------------------------------------------------------------------------------------


def test_typed_question_gets_the_quoted_answer(app_url, session):
    page = session.page
    open_chat(page, app_url)
    answer = ask(page, NATO_QUESTION)

    assert "Finland and Sweden" in answer.locator("blockquote.qa-best mark").first.inner_text()
    assert "Xavier Colomina" in answer.locator(".qa-cite").first.inner_text()
    assert user_messages(page).last.inner_text().strip() == NATO_QUESTION
    label = page.locator('#chat [data-testid="bot"]').last.get_attribute("aria-label")
    assert label.startswith("Answer: ") and "<" not in label and "Finland and Sweden" in label, label
    session.assert_quiet()

    # The README's screenshot: the question and the top of its answer, not the chat's bottom.
    page.locator("#question textarea").blur()
    page.evaluate("window.scrollTo(0, 0)")
    page.locator("#chat").evaluate(SCROLL_CHAT_TO_TOP)  # a short answer may fit without scrolling
    page.wait_for_timeout(500)  # nothing may scroll it back (auto-scroll, late layout)
    assert in_view(user_messages(page).last, whole=True), "the question is not visible in the chat"
    assert in_view(answer.locator("blockquote.qa-best").first, whole=False), "the answer's top is hidden"
    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOT))
    assert SCREENSHOT.stat().st_size > 10_000


def test_clicking_an_example_question_answers_it_with_a_reply(app_url, session):
    page = session.page
    open_chat(page, app_url)
    buttons = page.locator("#examples button")
    assert 4 <= buttons.count() <= 6
    shown = [b.strip() for b in buttons.all_inner_texts()]
    assert all(q.endswith("?") and "…" not in q and "..." not in q for q in shown), shown
    buttons.first.click()
    try:
        answer = wait_for_answer(page, 0)
    except PlaywrightTimeout:
        pytest.fail(f"clicking the example {shown[0]!r} gave no answer within {ANSWER_MS // 1000}s")
    assert user_messages(page).last.inner_text().strip() == shown[0]
    best = answer.locator("blockquote.qa-best").first.inner_text()
    assert shown[0] not in best, "the example was answered with itself"
    expect(page.locator("#question textarea")).to_be_focused()  # ready for the next question
    session.assert_quiet()


def test_off_topic_question_is_refused(app_url, session):
    page = session.page
    open_chat(page, app_url)
    answer = ask(page, "Who wrote Hamlet?")
    assert answer.locator(".qa-refusal").count() == 1
    assert "does not address" in answer.locator(".qa-refusal").inner_text()
    assert answer.locator("blockquote.qa-best").count() == 0
    # The closest passage is there for the curious, folded, said not to be an answer, unmarked.
    closest = answer.locator("details.qa-low")
    assert "not an answer" in closest.locator("summary").inner_text()
    closest.locator("summary").click()
    assert closest.locator("blockquote.qa-closest").is_visible()
    assert closest.locator("mark").count() == 0
    session.assert_quiet()


@pytest.mark.parametrize("message", ["hello", "ok thanks"])
def test_greetings_and_thanks_get_one_line_and_no_quote(app_url, session, message):
    page = session.page
    open_chat(page, app_url)
    box = page.locator("#question textarea")
    box.fill(message)
    box.press("Enter")
    reply = page.locator("#chat .qa-note").last
    reply.wait_for(timeout=ANSWER_MS)
    assert "Ask a question" in reply.inner_text()
    assert page.locator("#chat blockquote").count() == 0
    page.locator('#chat [data-testid="bot"]').last.hover()
    assert page.get_by_role("button", name="Like").count() == 0, "nothing to like in a greeting"
    session.assert_quiet()


@pytest.mark.parametrize("payload", PAYLOADS)
def test_typed_payload_shows_as_literal_text(app_url, session, payload):
    page = session.page
    open_chat(page, app_url)
    ask(page, payload)

    bubble = user_messages(page).last
    assert bubble.inner_text().strip() == payload
    assert payload in page.locator("body").inner_text()
    chat = page.locator("#chat")
    assert chat.locator("img").count() == 0
    assert chat.locator("script").count() == 0
    assert bubble.locator("strong, em, b, a, img, script").count() == 0
    assert page.locator("a[href^='javascript' i]").count() == 0
    session.assert_quiet()


def test_transcript_payloads_show_as_literal_text(hostile_app_url, session):
    page = session.page
    open_chat(page, hostile_app_url, examples=False)  # its questions hold markup: no examples
    answer = ask(page, "What did you say loudly?")

    # Answered or refused with the closest passage (folded): either way the sentence is quoted.
    if answer.locator("details.qa-low").count():
        answer.locator("details.qa-low summary").click()
    quote = answer.locator("blockquote.qa-quote").first.inner_text()
    for payload in ("<img src=x onerror=alert(1)>", "[x](javascript:alert(1))", "**bold**"):
        assert payload in quote, f"{payload!r} not shown literally in the quote {quote!r}"
    assert "Section <b>one</b>" in answer.locator(".qa-cite").first.inner_text()
    assert "<script>alert(1)</script>" in answer.locator(".qa-asked").first.inner_text()
    chat = page.locator("#chat")
    assert chat.locator("img").count() == 0
    assert chat.locator("script").count() == 0
    assert answer.locator("blockquote b, blockquote strong, blockquote a").count() == 0
    assert page.locator("a[href^='javascript' i]").count() == 0
    session.assert_quiet()


def test_page_only_talks_to_its_own_origin(app_url, session):
    page = session.page
    open_chat(page, app_url)
    ask(page, NATO_QUESTION)

    origin = urlsplit(app_url)
    assert session.requests, "no requests were recorded"
    foreign = [u for u in session.requests if urlsplit(u)[:2] != (origin.scheme, origin.netloc)]
    assert foreign == [], f"requests beyond {app_url}: {foreign}"
    session.assert_quiet()


# --- a conversation: follow-ups, the quote in its place, copy, export, feedback --------------------


def copied(page: Page, answer: Locator) -> str:
    """What the answer's own copy button puts on the clipboard."""
    answer.locator("button.qa-copy").click()
    expect(answer.locator("button.qa-copy")).to_have_text("Copied")
    return page.evaluate("navigator.clipboard.readText()")


CLIPBOARD = {"permissions": ["clipboard-read", "clipboard-write"]}


@pytest.mark.parametrize("session", [CLIPBOARD], indirect=True)
def test_a_conversation_can_be_followed_checked_kept_and_judged(app, session):
    url, tmp = app
    page = session.page
    open_chat(page, url)
    ask(page, "Did Russia annex Crimea?")
    second = ask(page, "When?")
    assert "Taken as a follow-up" in second.inner_text()
    assert "2014" in second.locator("blockquote.qa-best").inner_text()

    # The citation links the full transcript at the sentence (for a new tab, or with no script).
    link = second.locator("a.qa-open").first.get_attribute("href")
    assert link.startswith("/transcript/interview.txt#p-")
    full = page.context.new_page()
    full.goto(url + link)
    assert "2014" in full.locator(":target").inner_text()
    full.close()

    # Keep it: each answer copies as plain text with its citations, and no path of the server.
    text = copied(page, second)
    assert text.startswith("When?\n") and "2014" in text and "Xavier Colomina" in text
    assert "<" not in text and "&#" not in text and "interview.txt" not in text and str(ROOT) not in text
    with page.expect_download() as event:
        page.locator("#download").click()
    markdown = Path(event.value.path()).read_text(encoding="utf-8")
    raw = (ROOT / "data" / "interview.txt").read_text(encoding="utf-8")
    quotes = [line[2:] for line in markdown.splitlines() if line.startswith("> ")]
    assert len(quotes) >= 4 and all(q in raw for q in quotes)
    assert "## Did Russia annex Crimea?" in markdown and "## When?" in markdown

    # Judge it: a dislike is appended with the question and the quotes.
    feedback = tmp / "feedback.jsonl"
    page.locator('#chat [data-testid="bot"]').last.hover()
    page.get_by_role("button", name="Dislike").last.click()
    deadline = time.monotonic() + 20
    while not feedback.exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    record = json.loads(feedback.read_text(encoding="utf-8").splitlines()[-1])
    assert record["liked"] is False and record["question"] == "When?" and record["quotes"]

    # Not a follow-up after all: asked on its own, in the same conversation.
    second.locator("button.qa-alone").click()
    alone = wait_for_answer(page, 2)
    assert user_messages(page).last.inner_text().strip() == "When?"
    assert "Taken as a follow-up" not in alone.inner_text()
    session.assert_quiet()


# --- a first visitor: the first screen, one scroll, sources, contrast, a new conversation -------------

SCHEMES = [{"viewport": v, "color_scheme": c} for v in (LAPTOP, PHONE) for c in ("light", "dark")]
SCHEME_IDS = ["laptop-light", "laptop-dark", "phone-light", "phone-dark"]


@pytest.mark.parametrize(
    "session", [{"viewport": LAPTOP}, {"viewport": PHONE}], indirect=True, ids=["laptop", "phone"]
)
def test_the_question_box_is_in_view_focused_and_labelled_on_first_load(app_url, session):
    page = session.page
    open_chat(page, app_url)
    box = page.get_by_label("Your question")
    assert in_view(box, whole=True), "the question box is below the fold"
    assert in_view(page.locator("#examples button").first, whole=True), "no example on the first screen"
    if page.viewport_size == PHONE:  # where thumbs are, from the first screen on
        bottom = box.bounding_box()["y"] + box.bounding_box()["height"]
        assert bottom >= PHONE["height"] - 60, "the question box is not at the bottom of the screen"
    expect(box).to_be_focused()
    assert page.locator("#intro").inner_text().count("\n") <= 2, "the intro is more than a line or two"
    assert "Model:" not in page.locator("#intro").inner_text()
    session.assert_quiet()


@pytest.mark.parametrize("session", SCHEMES, indirect=True, ids=SCHEME_IDS)
def test_after_three_answers_the_newest_is_in_view_and_its_citation_opens_the_sentence(app_url, session):
    page = session.page
    phone = page.viewport_size == PHONE
    open_chat(page, app_url)
    dark = "dark" in page.evaluate("document.body.className")
    ask(page, NATO_QUESTION)
    ask(page, "Did Russia annex Crimea?")
    third = ask(page, "When?")  # a follow-up: its line must be readable in dark mode too
    page.wait_for_timeout(500)  # the scroll runs after the message is drawn

    # One scroll: the page's; the newest question, its best quote and its citation in view and
    # uncovered (by the question box, which stays at the bottom, or by Gradio's scroll button).
    assert page.evaluate(SCROLLERS) == []
    best = third.locator("blockquote.qa-best").first
    assert in_view(user_messages(page).last, whole=True), "the newest question is off screen"
    assert in_view(best, whole=True) and in_view(third.locator(".qa-cite").first, whole=True)
    assert best.evaluate(COVERED) == [] and third.locator(".qa-cite").first.evaluate(COVERED) == []
    box = page.locator("#question textarea").bounding_box()
    assert box["y"] + box["height"] <= page.viewport_size["height"], "the question box is off screen"
    if phone:
        assert box["y"] > page.viewport_size["height"] * 0.7, "the question box is not at the bottom"
    assert "score" not in third.inner_text(), "raw scores mean nothing to a visitor"
    assert axe_serious(page) == []
    name = f"screenshot-{'phone' if phone else 'laptop'}-{'dark' if dark else 'light'}.png"
    if name == "screenshot-phone-dark.png":
        page.screenshot(path=str(PHONE_SCREENSHOT))

    # The citation opens its sentence, marked, in a panel beside the chat (below it on a phone),
    # in view; Escape closes it and puts the reader back where they were.
    where = page.evaluate("window.scrollY")
    link = third.locator("a.qa-open").first
    link.click()
    panel = page.locator("#qa-panel")
    here = panel.locator("mark.qa-here")
    expect(here).to_be_visible()
    assert here.inner_text().strip() == third.locator("blockquote.qa-best mark").first.inner_text().strip()
    assert in_view(here, whole=True), "the marked sentence is not in view in the panel"
    assert here.evaluate(COVERED) == []
    assert in_view(link, whole=True) and link.evaluate(COVERED) == [], "the citation went out of view"
    if phone:
        assert panel.bounding_box()["y"] > 200, "on a phone the panel is below the chat"
    else:
        assert panel.bounding_box()["x"] >= best.bounding_box()["x"] + best.bounding_box()["width"]
    assert axe_serious(page) == []
    if not dark:
        page.screenshot(path=str(DOCS / f"screenshot-panel-{'phone' if phone else 'laptop'}.png"))
    page.keyboard.press("Escape")
    expect(panel).to_be_hidden()
    assert page.evaluate("window.scrollY") == where
    expect(link).to_be_focused()
    session.assert_quiet()


@pytest.mark.parametrize("session", [CLIPBOARD], indirect=True)
def test_a_new_conversation_forgets_the_old(app_url, session):
    page = session.page
    open_chat(page, app_url)
    answer = ask(page, "Did Russia annex Crimea?")
    assert "2014" in copied(page, answer)
    assert page.locator("#download").is_visible()

    page.get_by_role("button", name="New conversation").click()
    expect(page.locator("#chat .qa-answer")).to_have_count(0)
    expect(page.locator("#download")).to_have_count(0)
    expect(page.locator("#question textarea")).to_be_focused()
    answer = ask(page, "When?")  # a new conversation: nothing to follow up on
    assert "Taken as a follow-up" not in answer.inner_text()
    session.assert_quiet()


def test_empty_question_by_enter_or_button_is_treated_alike(app_url, session):
    page = session.page
    open_chat(page, app_url)
    notes = page.locator("#chat .qa-note")
    page.locator("#question textarea").press("Enter")
    expect(notes).to_have_count(1, timeout=ANSWER_MS)
    page.locator("#ask").click()
    expect(notes).to_have_count(2, timeout=ANSWER_MS)
    first, second = notes.all_inner_texts()
    assert first == second and "empty" in first
    session.assert_quiet()


@pytest.mark.parametrize("session", [{"viewport": PHONE}], indirect=True, ids=["phone"])
def test_the_full_transcript_on_a_phone_shows_the_linked_sentence_with_room_above(app_url, session):
    page = session.page
    url = app_url + "/transcript/interview.txt"
    page.goto(url)
    assert page.locator("meta[name='viewport']").count() == 1
    anchor = page.locator("span[id^='p-']").nth(40).get_attribute("id")
    page.goto(f"{url}#{anchor}")
    page.wait_for_timeout(300)
    top = page.locator(":target").evaluate("e => e.getBoundingClientRect().top")
    assert PHONE["height"] * 0.15 <= top <= PHONE["height"] * 0.6, top
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]


# --- an unsure answer: the engine is a stand-in whose every answer is unsure ---------------------


@pytest.fixture(scope="module")
def unsure_app_url(browser, tmp_path_factory) -> Iterator[str]:
    """The app in this process, over the interview with the stand-in embedder, answering every
    question as "unsure": how such an answer looks does not depend on which questions get one."""
    import threading
    from dataclasses import replace

    import uvicorn
    from conftest import INTERVIEW, FakeEmbedder, free_port

    import app as page_app
    from qa.engine import Engine

    tmp = tmp_path_factory.mktemp("unsure")
    engine = Engine(INTERVIEW, tmp / "index", embedder=FakeEmbedder(), progress=False, log=lambda m: None)
    real = engine.ask

    def unsure(*args, **kwargs):
        answer = real(*args, **kwargs)
        return replace(answer, answered=False, verdict="unsure") if answer.answered else answer

    engine.ask = unsure
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(page_app.build_app(engine, feedback=tmp / "feedback.jsonl"),
                                           host="127.0.0.1", port=port, log_level="warning"))  # fmt: skip
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.1)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(10)


@pytest.mark.parametrize(
    "session", [SCHEMES[0], SCHEMES[3]], indirect=True, ids=["laptop-light", "phone-dark"]
)
def test_an_unsure_answer_says_so_and_looks_unlike_an_answer_and_a_refusal(unsure_app_url, session):
    page = session.page
    open_chat(page, unsure_app_url, examples=False)  # only sure answers make examples
    answer = ask(page, "Did Russia annex Crimea?")
    head = answer.locator(".qa-unsure-head")
    assert "Not sure" in head.inner_text() and answer.locator(".qa-refusal").count() == 0
    quote = answer.locator("blockquote.qa-maybe").first
    assert quote.is_visible() and answer.locator("blockquote.qa-best").count() == 0
    # Not by colour alone: a dashed rule and no highlight fill, besides the words.
    assert "dashed" in quote.evaluate("e => getComputedStyle(e).borderLeftStyle")
    assert quote.locator("mark").evaluate("e => getComputedStyle(e).backgroundColor") == "rgba(0, 0, 0, 0)"
    assert axe_serious(page) == []
    if page.viewport_size == LAPTOP:
        page.screenshot(path=str(DOCS / "screenshot-unsure.png"))
    session.assert_quiet()


# --- transcripts added from the page: listed, answered, removed -------------------------------------


@pytest.mark.parametrize("session", [CLIPBOARD], indirect=True)
def test_a_transcript_added_from_the_page_is_listed_answered_and_removed(app, session):
    url, tmp = app
    page = session.page
    open_chat(page, url)
    files = tmp / "from-the-browser"
    files.mkdir()
    (files / "reef talk.txt").write_text(PODCAST, encoding="utf-8")
    (files / "broken.srt").write_bytes(b"\x00\x01\x02 not a transcript")
    page.get_by_text("Transcripts: the list, and adding your own").click()
    expect(page.locator("#transcripts")).to_contain_text("for everyone who can open this page")
    started = time.monotonic()
    page.locator("#upload input[type=file]").set_input_files(
        [str(files / "reef talk.txt"), str(files / "broken.srt")]
    )
    status = page.locator("#upload-status")
    expect(status).to_contain_text("searchable now", timeout=60_000)
    assert status.get_attribute("aria-live") == "polite" and status.get_attribute("role") == "status"
    assert in_view(status, whole=False), "the status is out of view"
    assert "Reef Talk" in status.inner_text() and "broken.srt" in status.inner_text()
    listed = page.locator("#loaded")
    expect(listed).to_contain_text("Reef Talk, episode 12")
    assert "Maya Lin" in listed.inner_text() and "(added from this page)" in listed.inner_text()
    assert "Loaded: 2 transcripts" in page.locator("#intro").inner_text()
    examples = page.locator("#examples button")
    expect(examples.filter(has_text="reefs")).not_to_have_count(0)  # its own questions as examples
    page.screenshot(path=str(DOCS / "screenshot-uploads.png"))

    answer = ask(page, "What is the biggest threat to coral reefs?")
    assert time.monotonic() - started < 60
    assert "Warming seas" in answer.locator("blockquote.qa-best").inner_text()
    assert "Maya Lin" in answer.locator(".qa-cite").first.inner_text()
    text = copied(page, answer)
    assert "Reef Talk" in text and "uploads" not in text and str(tmp) not in text, text
    kept = list((tmp / "index" / "uploads").iterdir())
    assert [p.suffix for p in kept] == [".txt"] and "reef-talk-" in kept[0].name  # our name, not theirs

    # Removed: gone from the list, the folder, the examples and the answers.
    page.locator("#loaded button.qa-remove").click()
    expect(status).to_contain_text("Removed", timeout=60_000)
    expect(listed).not_to_contain_text("Reef Talk")
    expect(examples.filter(has_text="reefs")).to_have_count(0)
    assert list((tmp / "index" / "uploads").iterdir()) == []
    after = ask(page, "What is the biggest threat to coral reefs?")
    assert "Maya Lin" not in after.inner_text() and "Warming seas" not in after.inner_text()
    session.assert_quiet()
