"""app.py as a real process, probed the way an attacker would: crafted upload events, huge
bodies, unfollowed uploads, in-place edits that hide themselves, and every route under --auth."""

import base64
import json
import os
import socket
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from pathlib import Path

import pytest
from conftest import INTERVIEW, read_exact, serve

pytestmark = pytest.mark.integration

SECRET = "Zanzibar marmalade protocol forty-two"
EDITED = "Kim: The code word is orange."  # becomes "lemons" in place, same size, mtime put back
CORAL = """Reef Talk

Sam: How long have you studied coral reefs?
Maya: For twenty years, mostly on the Great Barrier Reef.
Sam: What worries you most?
Maya: Warming seas are the biggest threat to coral reefs.
"""
SWEEP = {"QA_INCOMING_SWEEP": "1", "QA_INCOMING_MAX_AGE": "3", "QA_INCOMING_MAX_BYTES": "5000000",
         "QA_UPLOADS_MAX_BYTES": "1000"}  # fmt: skip


def run_on(words: int) -> str:
    """One sentence of `words` words and no full stop: a transcript nobody punctuated."""
    return " ".join(f"tidepool{i % 97} anemone" if i % 50 == 0 else "and then we" for i in range(words))


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("attack")
    data = tmp / "data"
    data.mkdir()
    (data / "interview.txt").write_bytes(INTERVIEW.read_bytes())
    (data / "edit.txt").write_text(f"Lee: What is the code word?\n{EDITED}\n", encoding="utf-8")
    (data / "runon.txt").write_text(
        f"Lee: Tell me about the tidepools?\nAnn: {run_on(6_000)}\n", encoding="utf-8"
    )
    (tmp / "secret.txt").write_text(f"Ann: {SECRET}.\nBob: Yes.\n", encoding="utf-8")
    for url in serve(tmp, "--data", str(data), "--watch", "1", env=SWEEP):
        yield url, tmp


def get(url: str, headers: dict | None = None, timeout: float = 60) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}), timeout=timeout) as r:
            return r.status, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as e:
        body = e.read()
        try:
            return e.code, json.loads(body or b"null")
        except ValueError:
            return e.code, {"raw": body.decode("utf-8", "replace")}


def ask(base: str, question: str, k: int = 5) -> tuple[int, dict]:
    return get(base + "/api/ask?" + urllib.parse.urlencode({"q": question, "k": k}))


def upload_event(base: str, path: str, name: str, timeout: float = 30) -> str:
    """Send the page's upload event naming `path` (any string a client likes) and return the
    status text it ends with, or Gradio's error."""
    import httpx

    config = httpx.get(base + "/config").json()
    fn = next(
        i for i, d in enumerate(config["dependencies"]) if d["targets"] and d["targets"][0][1] == "upload"
    )
    session = uuid.uuid4().hex
    sent = {"path": path, "orig_name": name, "meta": {"_type": "gradio.FileData"}}
    body = {"data": [[sent]], "fn_index": fn, "trigger_id": config["dependencies"][fn]["targets"][0][0],
            "session_hash": session}  # fmt: skip
    assert httpx.post(base + "/gradio_api/queue/join", json=body).status_code == 200
    with httpx.stream("GET", base + f"/gradio_api/queue/data?session_hash={session}", timeout=timeout) as s:
        for line in s.iter_lines():
            if "process_completed" in line:
                out = json.loads(line.removeprefix("data:"))["output"]
                return out.get("error") or out["data"][0]
    raise AssertionError("the upload event never completed")


def send_file(base: str, name: str, data: bytes) -> str:
    """What the page does: POST the file to Gradio's upload route, then the upload event."""
    import httpx

    r = httpx.post(base + "/gradio_api/upload", files={"files": (name, data, "text/plain")}, timeout=60)
    assert r.status_code == 200, r.text
    return upload_event(base, r.json()[0], name)


def answers_everywhere(base: str) -> None:
    """Every kind of route still answers, and quickly."""
    start = time.monotonic()
    assert get(base + "/healthz", timeout=10)[0] == 200
    with urllib.request.urlopen(base + "/", timeout=10) as r:
        assert r.status == 200
    status, body = get(base + "/api/ask?q=Which+countries+are+joining+NATO%3F&k=1", timeout=10)
    assert status == 200 and "Finland" in body["quotes"][0]["text"]
    assert time.monotonic() - start < 10


def test_a_crafted_upload_event_reads_no_file_of_the_server(app):
    base, tmp = app
    incoming = tmp / "index" / "incoming" / "crafted"
    os.mkfifo(tmp / "pipe.txt")
    inside = {"pipe": lambda p: os.mkfifo(p), "link": lambda p: p.symlink_to(tmp / "secret.txt")}
    paths = [
        str(tmp / "secret.txt"),
        str(ROOT_README),
        "/dev/zero",
        "/etc/passwd",
        str(tmp / "pipe.txt"),
        str(incoming / "pipe.txt"),
        str(incoming / "link.txt"),
        str(incoming / ".." / ".." / ".." / "secret.txt"),
    ]
    for path in paths:
        if Path(path).parent == incoming:  # made now: the sweep removes what waits in incoming
            incoming.mkdir(parents=True, exist_ok=True)
            inside[Path(path).stem](Path(path))
        started = time.monotonic()
        said = upload_event(base, path, "notes.txt")
        assert "Added" not in said and time.monotonic() - started < 10, (path, said)
        answers_everywhere(base)
    assert not (tmp / "index" / "uploads").exists() or not any((tmp / "index" / "uploads").iterdir())
    status, body = ask(base, f"What is the {SECRET}?")
    assert status == 200 and all(
        SECRET not in q["text"] for q in [*body["quotes"], body["closest"] or {"text": ""}]
    )
    for name in ["uploads/secret.txt", "uploads/notes.txt", "uploads/README.md"]:
        assert get(base + "/transcript/" + name)[0] == 404


ROOT_README = Path(__file__).resolve().parent.parent / "README.md"


def raw_request(base: str, head: str, body: bytes = b"") -> tuple[float, bytes]:
    """Send a request's head and the start of its body by hand; the seconds to the first byte
    of the answer, and that answer."""
    port = urllib.parse.urlsplit(base).port
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        start = time.monotonic()
        s.sendall(head.encode() + body)
        answer = s.recv(65536)
        seconds = time.monotonic() - start
        try:
            while more := s.recv(65536):  # the rest, up to the close the answer announces
                answer += more
        except OSError:
            pass
        return seconds, answer


@pytest.mark.parametrize("path", ["/gradio_api/queue/join", "/gradio_api/upload", "/api/ask", "/"])
def test_a_350_mb_body_gets_413_at_once(app, path):
    base, _ = app
    head = (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            "Content-Length: 350000000\r\n\r\n")  # fmt: skip
    seconds, answer = raw_request(base, head, b"{" * 65536)
    assert answer.startswith(b"HTTP/1.1 413") and seconds < 1, (seconds, answer[:200])
    assert b"limit" in answer
    answers_everywhere(base)


def test_a_body_sent_in_chunks_is_cut_off_at_the_limit(app):
    base, _ = app
    port = urllib.parse.urlsplit(base).port
    with socket.create_connection(("127.0.0.1", port), timeout=20) as s:
        s.sendall(b"POST /gradio_api/queue/join HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                  b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n")  # fmt: skip
        chunk = b"x" * 1_000_000
        sent = 0
        try:
            for _ in range(100):  # 100 MB, if nothing stopped it
                s.sendall(b"%x\r\n" % len(chunk) + chunk + b"\r\n")
                sent += len(chunk)
        except OSError:
            pass
        answer = s.recv(65536)
    assert answer.startswith(b"HTTP/1.1 413") and sent < 50_000_000, (sent, answer[:200])


def test_no_quote_is_longer_than_600_characters(app):
    base, tmp = app
    status, body = ask(base, "What about the tidepool anemone?", 20)
    assert status == 200 and body["quotes"]
    text = read_exact(tmp / "data" / "runon.txt")
    for q in body["quotes"]:
        assert len(q["text"]) <= 600 and q["text"] == text[q["start"] : q["end"]]
        assert not q["source"].startswith("/") and str(tmp) not in json.dumps(body)  # no server path
    assert any("tidepool" in q["text"] for q in body["quotes"])


def test_a_same_size_edit_with_its_mtime_put_back_is_never_quoted_stale(app):
    base, tmp = app
    path = tmp / "data" / "edit.txt"
    status, body = ask(base, "What is the code word?", 3)
    assert status == 200 and any("orange" in q["text"] for q in body["quotes"])
    before = path.stat()
    with open(path, "r+b") as f:  # in place: the same inode, the same size
        raw = f.read()
        f.seek(0)
        f.write(raw.replace(b"orange", b"lemons"))
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    after = path.stat()
    assert (after.st_size, after.st_mtime_ns, after.st_ino) == (
        before.st_size,
        before.st_mtime_ns,
        before.st_ino,
    )
    deadline, fresh = time.monotonic() + 30, False
    while time.monotonic() < deadline and not fresh:
        status, body = ask(base, "What is the code word?", 3)
        assert status in (200, 503), body
        if status == 200:
            assert all("orange" not in q["text"] for q in body["quotes"]), body
            fresh = any("lemons" in q["text"] for q in body["quotes"])
        time.sleep(0.2)
    assert fresh, "the edit was not re-indexed within 30 s"


def folder_bytes(folder: Path) -> int:
    return sum(p.lstat().st_size for p in folder.rglob("*") if p.is_file() and not p.is_symlink())


def test_unfollowed_uploads_are_swept_and_oversized_ones_refused_at_once(app):
    import httpx

    base, tmp = app
    incoming = tmp / "index" / "incoming"
    head = ("POST /gradio_api/upload HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            "Content-Type: multipart/form-data; boundary=x\r\nContent-Length: 25000000\r\n\r\n")  # fmt: skip
    for _ in range(40):  # 25 MB each: refused from the head, nothing written
        seconds, answer = raw_request(base, head, b"--x\r\n" + b"y" * 10_000)
        assert answer.startswith(b"HTTP/1.1 413") and seconds < 1
    codes = []
    with httpx.Client(timeout=60) as client:
        for i in range(20):  # 2 MB each, under the limit, never followed by the event
            sent = {"files": (f"f{i}.txt", os.urandom(2_000_000))}
            codes.append(client.post(base + "/gradio_api/upload", files=sent).status_code)
    assert codes[:2] == [200, 200] and set(codes) <= {200, 503}  # 503: the folder is full until the sweep
    assert folder_bytes(incoming) <= 5_000_000 + 2 * 2_000_000
    deadline = time.monotonic() + 60
    while folder_bytes(incoming) > 5_000_000 and time.monotonic() < deadline:
        time.sleep(0.5)
    assert folder_bytes(incoming) <= 5_000_000
    time.sleep(5)  # past the age limit: everything unfollowed is gone, empty files too
    assert [
        p for p in incoming.rglob("*") if p.is_file() and not p.is_symlink() and "crafted" not in p.parts
    ] == []
    answers_everywhere(base)


def test_a_real_upload_is_added_and_the_total_cap_refuses_the_next(app):
    base, tmp = app
    said = send_file(base, "reef talk.txt", CORAL.encode())  # 205 bytes, under the 1,000 allowed
    assert "Added" in said and "Reef Talk" in said, said
    status, body = ask(base, "What is the biggest threat to coral reefs?", 1)
    assert status == 200 and body["quotes"][0]["source"].startswith("uploads/")
    assert not body["quotes"][0]["source"].startswith("/")
    bigger = (CORAL * 5).replace("Reef Talk", "Reef Talk again")
    said = send_file(base, "more.txt", bigger.encode())
    assert "Nothing was added" in said and "MB allowed" in said, said
    assert not any(incoming.is_file() for incoming in (tmp / "index" / "incoming").rglob("more.txt"))


def test_a_big_single_turn_upload_is_refused_while_the_app_answers(app):
    base, tmp = app
    sentence = "The reef keeps changing with the warm water and the storms. "
    big = (
        "Big Talk\n\nSam: Tell me everything?\nMaya: " + sentence * (4_900_000 // len(sentence)) + "\n"
    ).encode()
    import threading

    said: list[str] = []
    worker = threading.Thread(target=lambda: said.append(send_file(base, "big.txt", big)))
    worker.start()
    while worker.is_alive():
        answers_everywhere(base)
        time.sleep(0.3)
    worker.join()
    assert "windows to index, over the limit" in said[0], said
    assert rss_mb(base) < 2000


def rss_mb(base: str) -> float:
    """The resident memory of the app serving `base`, found by its --port."""
    port = str(urllib.parse.urlsplit(base).port).encode()
    for proc in Path("/proc").iterdir():
        try:
            args = (proc / "cmdline").read_bytes().split(b"\0")
            if b"app.py" in args and port in args:
                status = (proc / "status").read_text()
                return next(int(x.split()[1]) for x in status.splitlines() if x.startswith("VmRSS:")) / 1024
        except (OSError, StopIteration):
            continue
    raise AssertionError("the app's process was not found")


# --- under --auth ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def locked(tmp_path_factory):
    yield from serve(tmp_path_factory.mktemp("locked"), "--auth", "ana:s3cret pass", "--mcp")


RIGHT = {"Authorization": "Basic " + base64.b64encode(b"ana:s3cret pass").decode()}
ROUTES = [("GET", "/"), ("GET", "/config"), ("GET", "/gradio_api/info"), ("POST", "/gradio_api/queue/join"),
          ("GET", "/gradio_api/queue/data?session_hash=x"), ("POST", "/gradio_api/upload"),
          ("POST", "/gradio_api/cancel"), ("GET", "/gradio_api/heartbeat/x"),
          ("GET", "/gradio_api/mcp/schema"),
          ("POST", "/gradio_api/mcp/"), ("GET", "/gradio_api/mcp/sse"), ("GET", "/api/ask?q=NATO"),
          ("GET", "/transcript/interview.txt"), ("GET", "/conversation/" + "0" * 32 + ".md"),
          ("GET", "/theme.css"), ("GET", "/assets/index.js"), ("GET", "/gradio_api/file=/etc/passwd"),
          ("GET", "/login"), ("POST", "/login"), ("GET", "/nowhere")]  # fmt: skip


def status_of(base: str, method: str, path: str, headers: dict | None = None) -> int:
    req = urllib.request.Request(base + path, method=method, headers=headers or {},
                                 data=b"{}" if method == "POST" else None)  # fmt: skip
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


def test_with_auth_every_route_but_healthz_wants_the_login(locked):
    for method, path in ROUTES:
        assert status_of(locked, method, path) == 401, (method, path)
    assert status_of(locked, "GET", "/healthz") == 200
    assert status_of(locked, "GET", "/", RIGHT) == 200
    assert status_of(locked, "GET", "/api/ask?q=NATO", RIGHT) == 200


def test_with_auth_wrong_passwords_are_slowed(locked):
    wrong = {"Authorization": "Basic " + base64.b64encode(b"ana:guess").decode()}
    start = time.monotonic()
    for _ in range(8):
        assert status_of(locked, "GET", "/api/ask?q=NATO", wrong) == 401
    assert time.monotonic() - start >= 2.5  # the first five are free, then one a second
    start = time.monotonic()
    assert status_of(locked, "GET", "/api/ask?q=NATO", RIGHT) == 200 and time.monotonic() - start < 5


def test_with_auth_mcp_tool_calls_work_with_the_credentials(locked):
    import asyncio

    pytest.importorskip("mcp", reason="the MCP extra is not installed: pip install 'gradio[mcp]'")
    from mcp import ClientSession
    from mcp.client.streamable_http import streamablehttp_client

    async def call() -> str:
        async with streamablehttp_client(locked + "/gradio_api/mcp/", headers=RIGHT) as (read, write, _):
            async with ClientSession(read, write) as session:
                await session.initialize()
                result = await session.call_tool(
                    "ask_interview", {"question": "When did Russia annex Crimea?"}
                )
                return result.content[0].text

    text = asyncio.run(call())
    assert "2014" in text and "Crimea" in text


def test_a_restart_with_a_big_upload_waiting_listens_first(tmp_path):
    """A 5 MB single-turn file in the uploads folder (put there by hand, or left by a run that
    died indexing it) does not delay the start: the app listens, then sets it aside."""
    data = tmp_path / "data"
    data.mkdir()
    (data / "reef.txt").write_text(CORAL, encoding="utf-8")
    started = time.monotonic()
    first = serve(tmp_path, "--data", str(data), "--watch", "0")
    next(first)
    plain = time.monotonic() - started
    first.close()
    uploads = tmp_path / "index" / "uploads"
    uploads.mkdir()
    sentence = "The reef keeps changing with the warm water and the storms. "
    big = "Big Talk\n\nSam: Tell me everything?\nMaya: " + sentence * (4_900_000 // len(sentence)) + "\n"
    (uploads / "big-0123abcd.txt").write_text(big, encoding="utf-8")
    started = time.monotonic()
    again = serve(tmp_path, "--data", str(data), "--watch", "0")
    base = next(again)
    restart = time.monotonic() - started
    try:
        print(f"start {plain:.1f} s; restart with a 4.9 MB upload waiting {restart:.1f} s")
        assert restart <= max(15.0, 2 * plain)  # the same start, on a machine whose load may change
        status, body = ask(base, "What is the biggest threat to coral reefs?", 1)
        assert status == 200 and "Warming seas" in body["quotes"][0]["text"]
        deadline = time.monotonic() + 60
        while not (uploads / "rejected" / "big-0123abcd.txt").exists() and time.monotonic() < deadline:
            time.sleep(0.5)
        assert (uploads / "rejected" / "big-0123abcd.txt").exists()
        assert "over the limit" in (tmp_path / "app.log").read_text(encoding="utf-8")
        assert rss_mb(base) < 2000
    finally:
        again.close()


def test_a_20_mb_question_is_refused_before_any_work():
    from qa.engine import QuestionError, clean_question

    start = time.monotonic()
    with pytest.raises(QuestionError, match="limit is 2000") as refused:
        clean_question("why " * 5_000_000)
    assert refused.value.status == 413 and time.monotonic() - start < 0.5
