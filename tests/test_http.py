"""app.py as a real process: the JSON routes beside the chat."""

import ipaddress
import json
import os
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

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
def server(app):
    """The run's shared app on the packaged interview (conftest's `app`): these tests only read."""
    return app


def test_healthz(server):
    status, body = get(server + "/healthz")
    assert status == 200 and body["status"] == "ok"
    assert body["sentences"] == 77 and body["windows"] == 166  # the title is one sentence


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


def listening(port: int) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    """The local addresses of the TCP sockets listening on `port`, as the kernel lists them."""
    found = []
    for table in (Path("/proc/net/tcp"), Path("/proc/net/tcp6")):
        if not table.exists():
            continue
        for line in table.read_text(encoding="ascii").splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, hexport = local.split(":")
            if state == "0A" and int(hexport, 16) == port:  # 0A: LISTEN
                raw = bytes.fromhex(address)  # 32-bit words, each in the machine's byte order
                if sys.byteorder == "little":
                    raw = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
                found.append(ipaddress.ip_address(raw))
    return found


def test_listens_on_loopback_only(server):
    if not Path("/proc/net/tcp").exists():
        pytest.skip("no /proc/net/tcp to read the listening sockets from")
    port = urllib.parse.urlsplit(server).port
    addresses = listening(port)
    assert addresses, f"nothing listens on port {port}"
    for address in addresses:
        address = getattr(address, "ipv4_mapped", None) or address
        assert address.is_loopback and not address.is_unspecified, f"listening on {address}:{port}"


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


def request(url: str, method: str = "GET", headers: dict | None = None):
    req = urllib.request.Request(url, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, r.read().decode("utf-8", "replace"), {k.lower(): v for k, v in r.headers.items()}
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode("utf-8", "replace"), {k.lower(): v for k, v in e.headers.items()}


@pytest.mark.parametrize("path", ["/", "/api/ask?q=NATO", "/transcript/interview.txt", "/config", "/healthz"])
def test_another_host_name_is_refused(server, path):
    """DNS rebinding: a page at evil.example whose name points at 127.0.0.1 gets nothing."""
    for host in ["evil.example", "evil.example:7860", "127.0.0.1.evil.example"]:
        status, body, _ = request(server + path, headers={"Host": host})
        assert status == 403 and "host" in json.loads(body)["error"], (host, path, status)
    port = server.rsplit(":", 1)[1]
    for host in [f"127.0.0.1:{port}", f"localhost:{port}", "[::1]"]:
        assert request(server + path, headers={"Host": host})[0] == 200, host


def test_forwarded_headers_are_not_believed(server):
    status, page, _ = request(server + "/", headers={"X-Forwarded-Host": "evil.example",
                                                     "X-Forwarded-Proto": "https"})  # fmt: skip
    assert status == 200 and "evil.example" not in page


@pytest.mark.parametrize(
    "method, path, status",
    [("HEAD", "/healthz", 200), ("HEAD", "/api/ask?q=NATO", 200), ("POST", "/api/ask?q=NATO", 405),
     ("DELETE", "/api/ask", 405)],
)  # fmt: skip
def test_methods(server, method, path, status):
    code, body, headers = request(server + path, method)
    assert code == status
    if status == 405:
        assert "GET" in headers["allow"] and "GET /api/ask" in json.loads(body)["error"]


def test_an_unknown_conversation_export_is_404(server):
    status, body, _ = request(server + "/conversation/" + "0" * 32 + ".md")
    assert status == 404 and "no such conversation" in json.loads(body)["error"]


# --- a folder that changes under the running app ------------------------------------------------

PODCAST = """Tom Hale: Welcome, Lena. Why did you move to Baku?
Lena Berg: I moved for the port project. The Caspian trade was growing fast.
Tom Hale: How many hives does your neighbour keep?
Lena Berg: He keeps forty hives on the hill behind the port.
"""


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("live")
    data = tmp / "data"
    data.mkdir()
    (data / "interview.txt").write_bytes(INTERVIEW.read_bytes())
    with open(os.fsencode(data) + b"/caf\xe9 notes.txt", "w", encoding="utf-8") as f:
        f.write(PODCAST)
    for url in serve(tmp, "--data", str(data), "--watch", "1", standin=True):  # files, not the model
        yield url, data


def test_a_file_name_that_is_not_utf8_breaks_nothing(live):
    url, _ = live
    for path in ["/", "/config", "/api/ask?q=How+many+hives", "/healthz"]:
        assert request(url + path)[0] == 200, path
    status, body = get(url + "/api/ask?q=How+many+hives+does+the+neighbour+keep%3F")
    assert status == 200 and body["quotes"][0]["source"].endswith("caf\\xe9 notes.txt")
    key = urllib.parse.quote("caf\\xe9 notes.txt")
    assert request(url + "/transcript/" + key)[0] == 200


def test_an_edit_while_serving_is_never_quoted_stale(live):
    url, data = live
    path = data / "interview.txt"
    question = "/api/ask?q=Which+countries+are+in+the+process+of+joining+NATO%3F&k=5"
    original = read_exact(path)
    path.write_text("Corrected transcript.\n\n" + original.replace("Finland", "Findland"),
                    encoding="utf-8", newline="")  # fmt: skip
    deadline, fresh = time.monotonic() + 30, False
    while time.monotonic() < deadline and not fresh:
        status, body = get(url + question)
        assert status in (200, 503), body
        if status == 200:
            now = read_exact(path)
            for q in body["quotes"]:
                assert now[q["start"] : q["end"]] == q["text"]  # never the old offsets
            fresh = "Findland" in body["quotes"][0]["text"]
        else:
            assert "changed on disk" in body["error"]
        time.sleep(0.2)
    assert fresh, "not re-indexed within 30 s"
    assert get(url + "/healthz")[1]["status"] == "ok"


@pytest.fixture(scope="module")
def locked(tmp_path_factory):
    yield from serve(tmp_path_factory.mktemp("locked"), "--auth", "ana:s3cret pass", standin=True)


def test_with_auth_the_json_routes_want_it_too(locked):
    import base64

    for path in ["/api/ask?q=NATO", "/transcript/interview.txt", "/conversation/" + "0" * 32 + ".md"]:
        status, body, headers = request(locked + path)
        assert status == 401 and "sign in" in json.loads(body)["error"]
        assert headers["www-authenticate"].lower().startswith("basic")
        wrong = base64.b64encode(b"ana:wrong").decode()
        assert request(locked + path, headers={"Authorization": f"Basic {wrong}"})[0] == 401
    right = {"Authorization": "Basic " + base64.b64encode(b"ana:s3cret pass").decode()}
    status, body, _ = request(locked + "/api/ask?q=NATO", headers=right)
    assert status == 200 and "quotes" in json.loads(body)
    assert request(locked + "/healthz")[0] == 200  # says only that it is up
