"""app.py as a real process under load: /api/ask and the chat side by side with /healthz answering
throughout, every answer the same as when asked alone, and a full chat queue turning requests away.

QA_LOAD_SECONDS sets how long the load lasts (default 30)."""

import json
import os
import threading
import time
from concurrent.futures import Future, wait
from itertools import cycle, islice

import httpx
import pytest
from conftest import INTERVIEW, read_exact
from gradio_client.utils import QueueError

from app import QUEUE_MAX
from bench import load

pytestmark = [pytest.mark.integration, pytest.mark.load]

SECONDS = float(os.environ.get("QA_LOAD_SECONDS", "30"))
CLIENTS = 16
MAX_REQUESTS = int(SECONDS * 100)  # per client: far more than the app can serve, but a bound
OVERLOAD = 4 * QUEUE_MAX  # at most this many chat requests posted to fill the queue
FILLERS = 8  # clients posting them at once
TOP_UP = 1.0  # seconds the queue is kept full while gradio_client tries to join it
REJECTED_WITHIN = 2.0  # seconds: a turned-away request comes back at least this fast
SERVED_WITHIN = 60.0  # seconds: the queue fills, and every request it took is answered, within this


@pytest.fixture(scope="module")
def server(app):
    """The run's shared app on the packaged interview (conftest's `app`)."""
    return app


def check_verbatim(body: dict, raw: str) -> None:
    assert body["answered"] and len(body["quotes"]) == 3, body
    for q in body["quotes"]:
        assert raw[q["start"] : q["end"]] == q["text"]
        assert q["start"] <= q["highlight_start"] < q["highlight_end"] <= q["end"]


@pytest.fixture(scope="module")
def alone(server) -> dict[str, dict]:
    """Each question asked once, with nothing else going on: what every answer under load must equal."""
    raw = read_exact(INTERVIEW)
    answers = {"api": {}, "chat": {}}
    client = load.gradio_client(server)
    try:
        for q in load.QUESTIONS:
            r = httpx.get(server + "/api/ask", params={"q": q, "k": 3}, timeout=30)
            assert r.status_code == 200 and r.headers["content-type"] == "application/json"
            answers["api"][q] = load.strict_json(r.text)
            check_verbatim(answers["api"][q], raw)
            answers["chat"][q] = client.predict(q, [], api_name="/ask")
            box, history = answers["chat"][q]
            assert box == "" and [m["role"] for m in history] == ["user", "assistant"]
            assert 'class="qa-answer ' in history[1]["content"][0]["text"]
    finally:
        client.close()
    return answers


def test_chat_endpoint_is_what_the_load_calls(server):
    client = load.gradio_client(server)
    try:
        api = client.view_api(print_info=False, return_format="dict")["named_endpoints"]
    finally:
        client.close()
    assert list(api) == ["/ask"]
    names = [p["parameter_name"] for p in api["/ask"]["parameters"]]
    assert names == ["message", "history", "source", "speaker"]
    assert all(p["parameter_has_default"] for p in api["/ask"]["parameters"][2:])
    assert [r["component"] for r in api["/ask"]["returns"]] == ["Textbox", "Chatbot"]


def test_sixteen_clients_on_api_and_chat_while_healthz_answers(server, alone, tmp_path):
    raw = read_exact(INTERVIEW)

    def check_api(question: str, response: httpx.Response) -> None:
        assert response.status_code == 200, f"{response.status_code}: {response.text[:200]}"
        assert response.headers["content-type"] == "application/json"
        body = load.strict_json(response.text)
        check_verbatim(body, raw)
        assert body == alone["api"][question], "differs from the answer given alone"

    def check_chat(question: str, result) -> None:
        assert tuple(result) == tuple(alone["chat"][question]), "differs from the answer given alone"

    started = time.monotonic()
    stats = load.run(server, CLIENTS, SECONDS, MAX_REQUESTS, check_api, check_chat)
    took = time.monotonic() - started
    figures = {name: s.summary() for name, s in stats.items()}
    figures["run"] = {"clients": CLIENTS, "seconds": SECONDS, "took_s": round(took, 1)}
    out = tmp_path / "load.json"
    out.write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")
    print(f"\n{CLIENTS} clients for {SECONDS:g} s (took {took:.1f} s):\n{load.table(stats)}\nfigures: {out}")

    for name, s in stats.items():
        assert not s.errors, f"{name}: {len(s.errors)} errors, first: {s.errors[:3]}"
    assert figures["api"]["count"] >= CLIENTS // 2 and figures["chat"]["count"] >= CLIENTS // 2
    health = stats["healthz"].latencies
    assert len(health) >= 0.5 * SECONDS / load.HEALTH_EVERY, f"/healthz polled only {len(health)} times"
    assert max(health) < load.HEALTH_LIMIT
    assert took < SECONDS + load.TIMEOUT + 10, "the load did not stop in time"


def test_full_chat_queue_turns_requests_away_at_once(server, alone, tmp_path):
    """Chat requests posted by several clients at once, faster than they are answered: once QUEUE_MAX wait,
    the next are turned away at once (503 "Queue is full", which gradio_client raises as QueueError),
    and every request the queue took is answered."""
    taken: list[tuple[str, str]] = []  # (event id, question)
    refused: list[tuple[int, str, float]] = []  # (status, body, seconds)
    full, stop = threading.Event(), threading.Event()

    questions, lock = islice(cycle(load.QUESTIONS), OVERLOAD), threading.Lock()

    def fill() -> None:
        with httpx.Client(base_url=server + "/gradio_api", timeout=load.TIMEOUT) as http:
            while not stop.is_set():
                with lock:
                    q = next(questions, None)
                if q is None:
                    return
                start = time.perf_counter()
                r = http.post("/call/ask", json={"data": [q, [], "All", "All"]})
                if r.status_code == 200:
                    taken.append((r.json()["event_id"], q))
                else:
                    refused.append((r.status_code, r.text, time.perf_counter() - start))
                    full.set()

    client = load.gradio_client(server)
    # Several posters at once, so that requests arrive faster than any machine answers them.
    fillers = [threading.Thread(target=fill, daemon=True) for _ in range(FILLERS)]
    started = time.perf_counter()
    for filler in fillers:
        filler.start()
    probe_s: dict[Future, float] = {}
    try:
        assert full.wait(SERVED_WITHIN), f"the queue took all {OVERLOAD} requests without filling up"
        sent = time.perf_counter()
        probes = [client.submit(q, [], api_name="/ask").future for q in load.QUESTIONS]
        for p in probes:
            p.add_done_callback(lambda f: probe_s.setdefault(f, time.perf_counter() - sent))
        wait(probes, timeout=TOP_UP)  # the filler keeps the queue full meanwhile
        stop.set()
        for filler in fillers:
            filler.join(load.TIMEOUT)
        answered = []
        with httpx.Client(base_url=server + "/gradio_api", timeout=load.TIMEOUT) as http:
            for event_id, q in taken:
                event, _, data = http.get(f"/call/ask/{event_id}").text.partition("\ndata: ")
                box_and_chat = json.loads(data)[:2]  # the last output is the answers' session state
                assert event == "event: complete" and box_and_chat == list(alone["chat"][q]), data[:300]
                answered.append(time.perf_counter() - started)
        _, late = wait(probes, timeout=SERVED_WITHIN)
    finally:
        stop.set()
        client.close()
    assert not any(f.is_alive() for f in fillers) and not late, "requests neither answered nor turned away"
    probe_errors = [p.exception() for p in probes]
    assert all(e is None or isinstance(e, QueueError) for e in probe_errors), probe_errors
    turned = sorted(probe_s[p] for p, e in zip(probes, probe_errors, strict=True) if e is not None)
    refused_s = sorted(seconds for _, _, seconds in refused)
    figures = {
        "queue_max": QUEUE_MAX,
        "taken": len(taken),
        "last_answered_s": round(answered[-1], 2),
        "turned_away": len(refused),
        "turned_away_p50_ms": load.percentile([s * 1000 for s in refused_s], 50),
        "turned_away_max_ms": load.percentile([s * 1000 for s in refused_s], 100),
        "gradio_client_probes": len(probes),
        "gradio_client_queue_errors": len(turned),
        "gradio_client_queue_error_max_ms": load.percentile([s * 1000 for s in turned], 100),
    }
    (tmp_path / "overload.json").write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")
    print(f"\nchat requests posted by {FILLERS} clients against a queue of {QUEUE_MAX}: {figures}")

    full_error = f"Queue is full. Max size is {QUEUE_MAX}"
    assert all(status == 503 and full_error in body for status, body, _ in refused), refused[:3]
    assert len(taken) >= QUEUE_MAX, "requests were turned away before the queue was full"
    # at once: well within the time the queue took to clear, had they waited in line
    assert refused_s[-1] < min(REJECTED_WITHIN, answered[-1] / 4), "the turned-away waited"
    assert turned and turned[-1] < REJECTED_WITHIN, "gradio_client was not turned away at once"
    assert httpx.get(server + "/healthz", timeout=load.HEALTH_LIMIT).status_code == 200
