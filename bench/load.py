"""Load a running app: clients on /api/ask and on the Gradio chat, and a /healthz poller.

python bench/load.py --url http://127.0.0.1:7860 --clients 16 --seconds 30 [--json PATH]

Half the clients call GET /api/ask, half the chat's "/ask" endpoint through gradio_client, each
with its own connection, rotating through QUESTIONS until the time is up (or `max_requests`
each); one thread polls /healthz every 0.5 s. Prints count, errors, p50 and p95 per endpoint.
tests/test_load.py runs the same load against its own app: its figures are the README's "Run the
tests" load paragraph.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

QUESTIONS = [
    "How are ties between the alliance and Baku these days?",
    "What new framework paper are they drafting with Azerbaijan?",
    "Is the alliance fighting in Ukraine?",
    "Has the war made Azerbaijani oil and gas more important?",
    "What should the South Caucasus countries do about the threat?",
    "Is NATO formally mediating between Yerevan and Baku?",
    "Which countries joined the alliance recently?",
    "How many Ukrainian soldiers has the alliance trained?",
]
TIMEOUT = 30.0  # one request, /api/ask or chat
HEALTH_EVERY = 0.5
HEALTH_LIMIT = 2.0  # a /healthz slower than this counts as an error

Check = Callable[[str, Any], None]  # (question, response) -> None, raises when the response is wrong


@dataclass
class Endpoint:
    """Latencies of every request to one endpoint, and what went wrong, thread-safe."""

    latencies: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def record(self, seconds: float, error: str | None = None) -> None:
        with self.lock:
            self.latencies.append(seconds)
            if error:
                self.errors.append(error)

    def summary(self) -> dict[str, float | int | None]:
        ms = sorted(s * 1000 for s in self.latencies)
        return {"count": len(ms), "errors": len(self.errors), "p50_ms": percentile(ms, 50),
                "p95_ms": percentile(ms, 95), "max_ms": percentile(ms, 100)}  # fmt: skip


def percentile(ordered: list[float], p: float) -> float | None:
    """Nearest rank: the smallest value with at least p% of the values at or below it."""
    return round(ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)], 1) if ordered else None


def strict_json(text: str) -> Any:
    """JSON as the standard has it: NaN and Infinity are not JSON."""

    def reject(name: str) -> None:
        raise ValueError(f"not JSON: {name}")

    return json.loads(text, parse_constant=reject)


def check_api(question: str, response: httpx.Response) -> None:
    response.raise_for_status()
    body = strict_json(response.text)
    assert isinstance(body, dict) and isinstance(body.get("quotes"), list), f"not an answer: {body!r:.200}"


def check_chat(question: str, result: Any) -> None:
    box, history = result
    assert box == "" and history and history[-1]["role"] == "assistant", f"not a reply: {result!r:.200}"


def _loop(call: Callable[[str], None], offset: int, deadline: float, max_requests: int, stats: Endpoint):
    for i in range(max_requests):
        if time.monotonic() >= deadline:
            return
        question = QUESTIONS[(offset + i) % len(QUESTIONS)]
        start = time.perf_counter()
        try:
            call(question)
            error = None
        except Exception as e:  # every failure is a result to count, not a crash
            error = f"{question!r}: {type(e).__name__}: {e}"
        stats.record(time.perf_counter() - start, error)


def api_client(url: str, offset: int, deadline: float, max_requests: int, stats: Endpoint, check: Check):
    with httpx.Client(base_url=url, timeout=TIMEOUT) as http:

        def ask(question: str) -> None:
            check(question, http.get("/api/ask", params={"q": question, "k": 3}))

        _loop(ask, offset, deadline, max_requests, stats)


def chat_client(client, offset: int, deadline: float, max_requests: int, stats: Endpoint, check: Check):
    def ask(question: str) -> None:
        check(question, client.submit(question, [], api_name="/ask").result(timeout=TIMEOUT))

    _loop(ask, offset, deadline, max_requests, stats)


def health_poller(url: str, deadline: float, stats: Endpoint) -> None:
    with httpx.Client(base_url=url, timeout=HEALTH_LIMIT) as http:
        due = time.monotonic()
        while due < deadline:
            start = time.perf_counter()
            try:
                status = http.get("/healthz").status_code
                error = None if status == 200 else f"/healthz returned {status}"
            except Exception as e:
                error = f"/healthz: {type(e).__name__}: {e}"
            elapsed = time.perf_counter() - start
            if error is None and elapsed >= HEALTH_LIMIT:
                error = f"/healthz took {elapsed:.2f} s"
            stats.record(elapsed, error)
            due += HEALTH_EVERY
            time.sleep(max(0.0, due - time.monotonic()))


def gradio_client(url: str, **kwargs):
    from gradio_client import Client

    return Client(url, verbose=False, download_files=False, analytics_enabled=False, **kwargs)


def run(
    url: str,
    clients: int = 16,
    seconds: float = 30.0,
    max_requests: int = 100_000,
    check_api: Check = check_api,
    check_chat: Check = check_chat,
) -> dict[str, Endpoint]:
    """Load `url` for `seconds`; every thread is joined or reported as hung."""
    stats = {"api": Endpoint(), "chat": Endpoint(), "healthz": Endpoint()}
    chats = [gradio_client(url) for _ in range(clients - clients // 2)]  # connected before the clock
    deadline = time.monotonic() + seconds
    api, chat, health = stats.values()
    jobs = [(api_client, (url, i, deadline, max_requests, api, check_api)) for i in range(clients // 2)]
    jobs += [(chat_client, (c, i, deadline, max_requests, chat, check_chat)) for i, c in enumerate(chats)]
    jobs.append((health_poller, (url, deadline, health)))
    threads = [threading.Thread(target=f, args=a, daemon=True, name=f.__name__) for f, a in jobs]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(max(0.0, deadline - time.monotonic()) + TIMEOUT + 5)
    finally:
        for c in chats:
            c.close()
    for t, (_, args) in zip(threads, jobs, strict=True):
        if t.is_alive():
            next(a for a in args if isinstance(a, Endpoint)).errors.append(f"{t.name} did not finish")
    return stats


def table(stats: dict[str, Endpoint]) -> str:
    columns = ("count", "errors", "p50_ms", "p95_ms", "max_ms")
    lines = [f"{'endpoint':<10}" + "".join(f"{c:>9}" for c in columns)]
    for name, s in stats.items():
        m = s.summary()
        lines.append(f"{name:<10}" + "".join(f"{'-' if m[c] is None else m[c]:>9}" for c in columns))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--url", default="http://127.0.0.1:7860")
    p.add_argument("--clients", type=int, default=16, help="half on /api/ask, half on the chat")
    p.add_argument("--seconds", type=float, default=30.0)
    p.add_argument("--json", type=Path, help="write the figures here as JSON")
    args = p.parse_args(argv)
    url = args.url.rstrip("/")
    try:
        stats = run(url, args.clients, args.seconds)
    except (httpx.HTTPError, ValueError) as e:  # no app there: gradio_client cannot read its config
        print(f"error: cannot load {url}: {e}", file=sys.stderr)
        return 2
    print(table(stats))
    for name, s in stats.items():
        for e in s.errors[:3]:
            print(f"{name}: {e}", file=sys.stderr)
    if args.json:
        figures = {name: s.summary() for name, s in stats.items()}
        figures["run"] = {"url": url, "clients": args.clients, "seconds": args.seconds}
        args.json.write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")
    return 1 if any(s.errors for s in stats.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
