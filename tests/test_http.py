"""app.py as a real process: the JSON routes beside the chat."""

import json
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest
from conftest import INTERVIEW, ROOT, env_for_subprocess, read_exact

pytestmark = pytest.mark.integration


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(url: str):
    try:
        with urllib.request.urlopen(url, timeout=60) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("app")
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "app.py", "--port", str(port)],
        cwd=ROOT,
        env=env_for_subprocess(tmp),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.time() + 120
    while time.time() < deadline:
        try:
            if get(base + "/healthz")[0] == 200:
                break
        except OSError:
            time.sleep(0.3)
        assert proc.poll() is None, proc.stderr.read()
    yield base
    proc.terminate()
    proc.wait(10)


def test_healthz(server):
    status, body = get(server + "/healthz")
    assert status == 200 and body["status"] == "ok" and body["passages"] == 76


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
