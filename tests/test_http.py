"""app.py as a real process: the JSON routes beside the chat."""

import json
import urllib.error
import urllib.parse
import urllib.request

import pytest
from conftest import INTERVIEW, ROOT, read_exact, serve

pytestmark = pytest.mark.integration


def get(url: str):
    try:
        with urllib.request.urlopen(url, timeout=60) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    yield from serve(tmp_path_factory.mktemp("app"))


def test_healthz(server):
    status, body = get(server + "/healthz")
    assert status == 200 and body["status"] == "ok" and body["passages"] == 77  # the title is one


def test_ask_returns_the_answer_object(server):
    status, body = get(server + "/api/ask?q=Which+countries+are+joining+NATO%3F&k=2")
    assert status == 200 and body["answered"] and len(body["quotes"]) == 2
    raw = read_exact(INTERVIEW)
    for q in body["quotes"]:
        assert raw[q["start"] : q["end"]] == q["text"]
        assert {"text", "source", "start", "end", "score", "speaker", "section", "asked"} <= set(q)
    assert "Finland and Sweden" in body["quotes"][0]["text"]


@pytest.mark.parametrize(
    "query, status",
    [
        ("", 400),
        ("?q=", 400),
        ("?q=%20%20", 400),
        ("?q=hi&k=0", 400),
        ("?q=hi&k=abc", 400),
        ("?q=hi&k=1000000000", 400),
        ("?q=" + "x" * 5000, 413),
    ],
)
def test_bad_requests(server, query, status):
    code, body = get(server + "/api/ask" + query)
    assert code == status and isinstance(body.get("error"), str)
    assert get(server + "/healthz")[0] == 200


def test_listens_on_loopback_only(server):
    assert server.startswith("http://127.0.0.1:")


@pytest.mark.parametrize(
    "query",
    [
        "?q=%00%00",
        "?q=NATO%00and%01Iran%1b",
        "?q=%FF%FE%FD",
        "?q=%ED%A0%80",
        "?q=%F0%9F%98%80%F0%9F%A4%94",
        "?q=" + urllib.parse.quote("Что думает НАТО об Иране?"),
        "?q=" + urllib.parse.quote("NATO Azərbaycanla əməkdaşlıq haqqında nə deyir?"),
        "?q=" + urllib.parse.quote("ماذا يقول الناتو؟"),
        "?q=hi&k=-1",
        "?q=hi&k=1.5",
        "?q=hi&q=there",
        "?q=x" + "y" * 100_000,
    ],
)
def test_hostile_input_never_500(server, query):
    code, body = get(server + "/api/ask" + query)
    assert code in (200, 400, 413), (code, body)
    if code == 200:
        assert isinstance(body["answered"], bool)
    else:
        assert isinstance(body["error"], str) and "Traceback" not in body["error"]
    assert get(server + "/healthz")[0] == 200


def test_too_long_question_names_the_limit(server):
    code, body = get(server + "/api/ask?q=" + "x" * 100_000)
    assert code == 413 and "2000" in body["error"]


@pytest.mark.parametrize("message", ["", "   ", "\x00", "x" * 100_000, "<script>alert(1)</script>", "Что?"])
def test_chat_endpoint_bad_input_is_answered_not_raised(server, message):
    from gradio_client import Client

    client = Client(server + "/", verbose=False)
    box, history = client.predict(message, [], api_name="/ask")
    assert box == "" and history and history[-1]["role"] == "assistant"
    text = str(history[-1]["content"])
    if not message.strip() or message == "\x00":
        assert "empty" in text
    if len(message) > 2000:
        assert "2000" in text
    assert get(server + "/healthz")[0] == 200


@pytest.mark.parametrize(
    "path",
    [
        "/file=/etc/passwd",
        "/gradio_api/file=/etc/passwd",
        "/gradio_api/file=data/interview.txt",
        f"/gradio_api/file={ROOT}/data/interview.txt",
        f"/gradio_api/file={ROOT}/app.py",
        "/gradio_api/file=.index/",
        "/static/../../etc/passwd",
        "/assets/../../../etc/passwd",
        "/gradio_api/file=../../../../etc/passwd",
        "/%2e%2e/%2e%2e/etc/passwd",
        "/data/interview.txt",
        "/.index/",
    ],
)
def test_file_routes_serve_nothing_of_ours(server, path):
    req = urllib.request.Request(server + path)
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            status, body = r.status, r.read()
    except urllib.error.HTTPError as e:
        status, body = e.code, e.read()
    text = body.decode("utf-8", "replace")
    assert "root:x:0:0" not in text and "Xavier Colomina" not in text and "def main" not in text
    assert status in (400, 403, 404) or (status == 200 and "<html" in text.lower()), (status, text[:200])


def test_history_makes_a_follow_up(server):
    q = urllib.parse.urlencode({"q": "When?", "k": 1, "history": ["Did Russia annex Crimea?"]}, doseq=True)
    code, body = get(server + "/api/ask?" + q)
    assert code == 200 and body["searched"] == "When? Did Russia annex Crimea?"
    assert "2014" in body["quotes"][0]["text"]


def test_full_transcript_view(server):
    with urllib.request.urlopen(server + "/transcript/interview.txt", timeout=30) as r:
        page = r.read().decode("utf-8")
    assert 'id="p-' in page and "Xavier Colomina" in page
    for path in ["/transcript/nope.txt", "/transcript/..%2Fapp.py", "/transcript/%2Fetc%2Fpasswd"]:
        try:
            urllib.request.urlopen(server + path, timeout=30)
            raise AssertionError(path)
        except urllib.error.HTTPError as e:
            assert e.code == 404
