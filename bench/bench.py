"""Latency, start-up, build throughput and memory of the app, against what the model alone costs.

python bench/bench.py [--sizes 1,10,100] [--repeat N] [--json PATH]

Fills the README's "Speed" table. For each size (1 = data/interview.txt; N = a synthetic
transcript of about N times its windows, generated deterministically under bench/out/), in one run:

- query floor: `Embedder().encode([q])` plus `dense_search(engine.index, v, 64)`, in-process;
- `Engine.ask` in-process and `GET /api/ask` of a running `app.py` (keep-alive connection),
  p50 and p95 over a fixed list of questions, and their ratios to the floor; each run times
  the three one after the other, in an order that rotates from run to run;
- start-up of `app.py` to `/healthz` 200 with the index cached and with no index, against the
  floor `python -c "import gradio, sentence_transformers, faiss"` (run alternately with the
  cached start-ups, timed until the imports are done: the interpreter's exit is not counted);
- index build throughput of `Engine(...)` on a fresh index dir (with an already loaded model)
  against `Embedder.encode` alone on the same window texts;
- peak RSS (VmHWM) of the app process after the query runs.

Every figure is the median over repeated runs, with min and max. Heavy steps (builds, start-ups
with no index) are repeated fewer times on large corpora, so that the whole run stays short:
the count used is in the table and the JSON. The targets are checked at the end (PASS/FAIL,
with a caveat when the runs disagree); the exit status is 1 when one fails. The JSON goes to
bench/out/bench.json unless --json says otherwise.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

# Run as a script, bench/ comes first on sys.path and `bench` would be this file, not the package.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.corpus import OUT, PROJECT, corpus
from bench.stats import NOISY, caveat, fmt, percentile, spread

if TYPE_CHECKING:
    from embeddings.model import Embedder
    from qa.engine import Engine

QUESTIONS_FILE = PROJECT.parent / "shared" / "eval" / "questions.jsonl"
N_QUESTIONS = 20
DENSE_K = 64
HEAVY_BUDGET = 3000  # windows: builds and no-index start-ups above this many run once per size

BUILTIN_QUESTIONS = [
    "What is the current state of cooperation between NATO and Azerbaijan?",
    "What document will guide the partnership in the coming years?",
    "Did Azerbaijan help NATO in Afghanistan?",
    "How has the war in Ukraine affected the South Caucasus?",
    "Is NATO a party to the war?",
    "What mistakes did Putin make?",
    "How many Russians left to avoid mobilization?",
    "Why has Azerbaijani oil and gas become more important?",
    "Can NATO help build trust between Baku and Yerevan?",
    "Is NATO mediating between Armenia and Azerbaijan?",
    "What does NATO think of Iranian drones used against Ukraine?",
    "Can Russia veto a country's NATO membership?",
    "Who decides on NATO accession?",
    "Is NATO still committed to the Bucharest summit decision?",
    "Will Georgia and Ukraine become NATO members?",
    "Will NATO keep supporting Ukraine?",
    "How many Ukrainian soldiers has NATO trained?",
    "What should the countries of the region do about Russia?",
    "Is the door to NATO membership still open?",
    "What is NATO's view of Russia's aggression?",
]


# --- the app as a child process, and a keep-alive client of its /api/ask -------------------------

IMPORT_FLOOR = "import gradio, sentence_transformers, faiss"
START_TIMEOUT = 600.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class App:
    """`python app.py` on a free loopback port; started() returns seconds to /healthz 200."""

    def __init__(self, data: Path, index_dir: Path, log: Path) -> None:
        self.data, self.index_dir, self.log_path = data, index_dir, log
        self.proc: subprocess.Popen | None = None
        self.port = 0

    def start(self) -> float:
        self.port = free_port()
        env = {k: v for k, v in os.environ.items() if k not in ("QA_AUTH", "QA_INDEX_DIR")}
        cmd = [sys.executable, "app.py", "--data", str(self.data), "--index-dir", str(self.index_dir),
               "--host", "127.0.0.1", "--port", str(self.port)]  # fmt: skip
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "wb") as log:
            t0 = time.perf_counter()
            self.proc = subprocess.Popen(cmd, cwd=PROJECT, env=env, stdout=log, stderr=subprocess.STDOUT)
        while True:
            if self.proc.poll() is not None:
                tail = self.log_path.read_text(errors="replace")[-2000:]
                raise RuntimeError(f"app.py exited with {self.proc.returncode}:\n{tail}")
            if time.perf_counter() - t0 > START_TIMEOUT:
                raise RuntimeError(f"app.py not healthy after {START_TIMEOUT:.0f} s")
            try:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
                conn.request("GET", "/healthz")
                status = conn.getresponse().status
                conn.close()
                if status == 200:
                    return time.perf_counter() - t0
            except OSError:
                pass
            time.sleep(0.05)

    def peak_rss(self) -> int:
        """VmHWM of the app process, in bytes."""
        assert self.proc is not None
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
        raise RuntimeError("no VmHWM in /proc status")

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(15)


def import_floor() -> tuple[float, float]:
    """Seconds for a fresh interpreter to import what the app needs, in the app's environment:
    (until the imports are done, as the app's start-up is timed until it answers; until it has
    exited, which adds the interpreter's teardown)."""
    env = dict(os.environ, GRADIO_ANALYTICS_ENABLED="False", HF_HUB_OFFLINE="1")
    t0 = time.perf_counter()
    code = f"{IMPORT_FLOOR}; print('imported', flush=True)"
    proc = subprocess.Popen(
        [sys.executable, "-c", code], cwd=PROJECT, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    imported = time.perf_counter() - t0
    proc.stdout.read()
    if proc.wait() != 0 or not line.startswith(b"imported"):
        raise RuntimeError(f"the import floor failed with exit code {proc.returncode}")
    return imported, time.perf_counter() - t0


class ApiClient:
    """GET /api/ask over one keep-alive connection; reconnects once if the server closed it."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)

    def ask(self, question: str) -> bytes:
        path = "/api/ask?" + urllib.parse.urlencode({"q": question, "k": 3})
        for attempt in (1, 2):
            try:
                self.conn.request("GET", path)
                response = self.conn.getresponse()
                body = response.read()
                break
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                self.conn.close()
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
                if attempt == 2:
                    raise
        if response.status != 200:
            raise RuntimeError(f"/api/ask returned {response.status}: {body[:200]!r}")
        return body

    def close(self) -> None:
        self.conn.close()


# --- the measurements ------------------------------------------------------------------------------


def load_questions() -> list[str]:
    try:
        rows = [json.loads(line) for line in QUESTIONS_FILE.read_text(encoding="utf-8").splitlines() if line]
        questions = [r["question"] for r in rows if r.get("question")]
    except (OSError, ValueError, KeyError, TypeError):
        questions = []
    return questions[:N_QUESTIONS] if len(questions) >= 5 else BUILTIN_QUESTIONS


def timed(f: Callable[[], Any]) -> float:
    t0 = time.perf_counter()
    f()
    return time.perf_counter() - t0


def heavy_repeats(repeat: int, windows: int) -> int:
    return max(1, min(repeat, HEAVY_BUDGET // max(windows, 1)))


def fresh_dir(tag: str) -> Path:
    OUT.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f"index-{tag}-", dir=OUT))


def build_throughput(
    data: Path, texts: list[str], heavy: int, embedder: Embedder, size: int
) -> tuple[dict[str, Any], Engine, Path]:
    """Raw encode and Engine(...) on a fresh index dir, alternating, with the same loaded model.

    Returns the figures, the last engine and its index dir, which the later steps use."""
    from qa.engine import Engine

    n = len(texts)
    encode_rate, build_rate, engine, cached = [], [], None, None
    for _ in range(heavy):
        encode_rate.append(n / timed(lambda: embedder.encode(texts)))
        if cached is not None:
            shutil.rmtree(cached)
        cached = fresh_dir(f"{size}x")
        t0 = time.perf_counter()
        engine = Engine(data, cached, embedder=embedder, progress=False, log=lambda m: None)
        build_rate.append(n / (time.perf_counter() - t0))
        assert engine.report.embedded_windows == n, engine.report
    assert engine is not None and cached is not None
    build = {"raw_encode_per_s": spread(encode_rate), "engine_per_s": spread(build_rate),
             "ratio": statistics.median(build_rate) / statistics.median(encode_rate)}  # fmt: skip
    return build, engine, cached


def cached_startups(data: Path, index_dir: Path, repeat: int, size: int) -> tuple[dict[str, Any], App]:
    """Start-up with the index cached, each run right after an import-floor run so that both see
    the same machine load. The last app stays up for the queries: the caller stops it."""
    floors, floors_exit, starts = [], [], []
    for i in range(repeat):
        imported, exited = import_floor()
        floors.append(imported)
        floors_exit.append(exited)
        app = App(data, index_dir, OUT / "logs" / f"app-{size}x-cached.log")
        try:
            starts.append(app.start())
        except BaseException:
            app.stop()
            raise
        if i < repeat - 1:
            app.stop()
    figures = {"import_floor_s": spread(floors), "import_floor_with_exit_s": spread(floors_exit),
               "start_cached_s": spread(starts)}  # fmt: skip
    return figures, app


def query_timings(
    engine: Engine, embedder: Embedder, port: int, questions: list[str], repeat: int
) -> dict[str, Any]:
    """p50 and p95 of the floor, Engine.ask and /api/ask on `port`, over the same questions."""
    from qa.retrieve import dense_search

    client = ApiClient(port)
    for q in questions[:3]:  # warm-up
        dense_search(engine.index, embedder.encode([q])[0], DENSE_K)
        engine.ask(q, 3)
        client.ask(q)
    per_run: dict[str, dict[str, list[float]]] = {
        k: {"p50": [], "p95": []} for k in ("floor", "engine", "api")
    }
    calls: dict[str, Callable[[str], Any]] = {
        "floor": lambda q: dense_search(engine.index, embedder.encode([q])[0], DENSE_K),
        "engine": lambda q: engine.ask(q, 3),
        "api": client.ask,
    }
    order = list(calls)
    for run in range(repeat):
        # One block of all questions per path, in an order that rotates from run to run. Not
        # question by question: torch's worker threads keep spinning for a while after a
        # call, and would slow the other process's next call. The untimed first call of a
        # block takes that hit.
        for name in order[run % 3 :] + order[: run % 3]:
            call = calls[name]
            call(questions[-1])
            samples = [timed(lambda q=q, call=call: call(q)) for q in questions]
            per_run[name]["p50"].append(percentile(samples, 50))
            per_run[name]["p95"].append(percentile(samples, 95))
    client.close()
    query: dict[str, Any] = {k: {p: spread(v) for p, v in d.items()} for k, d in per_run.items()}
    floor50 = query["floor"]["p50"]["median"]
    for k in ("engine", "api"):
        query[k]["ratio_p50_to_floor"] = query[k]["p50"]["median"] / floor50
    return query


def fresh_startups(data: Path, heavy: int, size: int) -> dict[str, Any]:
    """Start-up with no index: a fresh --index-dir each time."""
    fresh = []
    for _ in range(heavy):
        folder = fresh_dir(f"{size}x-nocache")
        app = App(data, folder, OUT / "logs" / f"app-{size}x-fresh.log")
        try:
            fresh.append(app.start())
        finally:
            app.stop()
            shutil.rmtree(folder, ignore_errors=True)
    return spread(fresh)


def bench_size(
    size: int, repeat: int, questions: list[str], embedder: Embedder, say: Callable[[str], None]
) -> dict:
    """Every figure for one size. Order matters: the queries run on the last cached start-up's app."""
    from qa.engine import load_transcripts
    from qa.retrieve import window_text, windows

    data = corpus(size)
    _, _, transcripts, _ = load_transcripts(data, log=lambda m: None)
    # What the engine embeds: every window of 1-3 sentences, so that raw encode compares like with like.
    texts = [window_text(t.passages, w) for t in transcripts.values() for w in windows(t.passages)]
    n = len(texts)
    heavy = heavy_repeats(repeat, n)
    result: dict[str, Any] = {"size": size, "data": str(data.relative_to(PROJECT)), "windows": n,
                              "repeats": repeat, "heavy_repeats": heavy}  # fmt: skip
    say(f"[{size}x] {n} windows; build x{heavy}")

    result["build"], engine, cached = build_throughput(data, texts, heavy, embedder, size)
    say(f"[{size}x] build {fmt(result['build']['engine_per_s'], digits=0)} windows/s, "
        f"raw encode {fmt(result['build']['raw_encode_per_s'], digits=0)}")  # fmt: skip

    startups, app = cached_startups(data, cached, repeat, size)
    try:
        result.update(startups)
        say(f"[{size}x] cached start-up {fmt(result['start_cached_s'], digits=2)} s, "
            f"import floor {fmt(result['import_floor_s'], digits=2)} s")  # fmt: skip
        query = query_timings(engine, embedder, app.port, questions, repeat)
        result["query_s"] = query
        result["peak_rss_bytes"] = app.peak_rss()
        say(f"[{size}x] p50 floor {fmt(query['floor']['p50'], 1000)} ms, Engine.ask "
            f"{fmt(query['engine']['p50'], 1000)} ms, /api/ask {fmt(query['api']['p50'], 1000)} ms; "
            f"VmHWM {result['peak_rss_bytes'] / 2**20:.0f} MiB")  # fmt: skip
    finally:
        app.stop()
    shutil.rmtree(cached, ignore_errors=True)

    result["start_fresh_s"] = fresh_startups(data, heavy, size)
    say(f"[{size}x] no-index start-up {fmt(result['start_fresh_s'], digits=2)} s")
    return result


# --- targets and tables ----------------------------------------------------------------------------

GB = 10**9

# Targets from the issue.
API_VS_FLOOR = 1.5  # /api/ask p50 <= 1.5x floor p50, at 1x
START_MARGIN_S = 3.0  # cached start-up <= import floor + 3 s
BUILD_VS_ENCODE = 0.8  # build throughput >= 0.8x raw encode
SCALE_100 = 2.0  # /api/ask p50 at 100x <= 2x p50 at 1x
RSS_LIMIT = 1 * GB  # VmHWM of the app at 1x


def checks(results: dict[int, dict]) -> list[dict[str, Any]]:
    out = []

    def check(
        name: str, value: float | None, limit: float | None, ok: bool | None, unit: str, inputs: list[dict]
    ) -> None:
        verdict = "SKIP" if ok is None else ("PASS" if ok else "FAIL")
        out.append({"target": name, "value": value, "limit": limit, "unit": unit, "result": verdict,
                    "caveat": caveat(inputs)})  # fmt: skip

    one = results.get(1)
    if one:
        api, floor = one["query_s"]["api"]["p50"]["median"], one["query_s"]["floor"]["p50"]["median"]
        check(f"/api/ask p50 <= {API_VS_FLOOR}x floor at 1x", api / floor, API_VS_FLOOR,
              api <= API_VS_FLOOR * floor, "x floor",
              [one["query_s"]["api"]["p50"], one["query_s"]["floor"]["p50"]])  # fmt: skip
        start, limit = one["start_cached_s"]["median"], one["import_floor_s"]["median"] + START_MARGIN_S
        check(f"cached start-up <= import floor + {START_MARGIN_S:.0f} s at 1x", start, limit,
              start <= limit, "s", [one["start_cached_s"], one["import_floor_s"]])  # fmt: skip
        rss = one["peak_rss_bytes"]
        check("peak RSS (VmHWM) at 1x <= 1 GB", rss / GB, RSS_LIMIT / GB, rss <= RSS_LIMIT, "GB", [])
    else:
        for name in ("/api/ask p50 vs floor at 1x", "cached start-up at 1x", "peak RSS at 1x"):
            check(name, None, None, None, "", [])
    for size, r in results.items():
        built = r["build"]
        inputs = [built["engine_per_s"], built["raw_encode_per_s"]]
        check(f"build >= {BUILD_VS_ENCODE}x raw encode at {size}x", built["ratio"], BUILD_VS_ENCODE,
              built["ratio"] >= BUILD_VS_ENCODE, "x encode", inputs)  # fmt: skip
    if one and 100 in results:
        a, b = one["query_s"]["api"]["p50"]["median"], results[100]["query_s"]["api"]["p50"]["median"]
        check(f"/api/ask p50 at 100x <= {SCALE_100}x p50 at 1x", b / a, SCALE_100, b <= SCALE_100 * a, "x",
              [one["query_s"]["api"]["p50"], results[100]["query_s"]["api"]["p50"]])  # fmt: skip
    else:
        check(f"/api/ask p50 at 100x <= {SCALE_100}x p50 at 1x", None, None, None, "", [])
    return out


def table(rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths,
             strict=True))) for r in rows]  # fmt: skip
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def report(results: dict[int, dict], targets: list[dict], repeat: int, nq: int) -> str:
    sizes = list(results)
    parts = [f"Medians over runs [min-max]; query figures per run are over {nq} questions, {repeat} runs."]
    rows = [["size", "windows", "floor p50", "floor p95", "Engine.ask p50", "p95", "x floor",
             "/api/ask p50", "p95", "x floor"]]  # fmt: skip
    for s in sizes:
        q = results[s]["query_s"]
        rows.append([f"{s}x", str(results[s]["windows"]), fmt(q["floor"]["p50"], 1000),
                     fmt(q["floor"]["p95"], 1000), fmt(q["engine"]["p50"], 1000),
                     fmt(q["engine"]["p95"], 1000), f"{q['engine']['ratio_p50_to_floor']:.2f}",
                     fmt(q["api"]["p50"], 1000), fmt(q["api"]["p95"], 1000),
                     f"{q['api']['ratio_p50_to_floor']:.2f}"])  # fmt: skip
    parts += ["", "Query latency (ms)", table(rows)]
    rows = [["size", "import floor", "cached", "cached - floor", "no index", "peak RSS MiB"]]
    for s in sizes:
        r = results[s]
        rows.append([f"{s}x", fmt(r["import_floor_s"], digits=2), fmt(r["start_cached_s"], digits=2),
                     f"{r['start_cached_s']['median'] - r['import_floor_s']['median']:+.2f}",
                     fmt(r["start_fresh_s"], digits=2), f"{r['peak_rss_bytes'] / 2**20:.0f}"])  # fmt: skip
    parts += ["", "Start-up to /healthz 200 (s), and the app's VmHWM after the queries", table(rows)]
    rows = [["size", "windows", "raw encode /s", "Engine build /s", "build / encode"]]
    for s in sizes:
        b = results[s]["build"]
        rows.append([f"{s}x", str(results[s]["windows"]), fmt(b["raw_encode_per_s"], digits=0),
                     fmt(b["engine_per_s"], digits=0), f"{b['ratio']:.2f}"])  # fmt: skip
    parts += ["", "Index build throughput (windows/s, model already loaded)", table(rows)]
    rows = [["target", "value", "limit", "result", "caveat"]]
    for t in targets:
        value = "-" if t["value"] is None else f"{t['value']:.2f} {t['unit']}".strip()
        limit = "-" if t["limit"] is None else f"{t['limit']:.2f}"
        rows.append([t["target"], value, limit, t["result"], t["caveat"]])
    parts += ["", "Targets (caveat: a single run, or runs that differ by more than "
              f"{NOISY}x: re-run on a quiet machine before trusting the verdict)", table(rows)]  # fmt: skip
    return "\n".join(parts)


def machine() -> dict[str, Any]:
    return {"python": platform.python_version(), "platform": platform.platform(), "cpus": os.cpu_count(),
            "loadavg": os.getloadavg()}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", default="1,10,100", help="corpus sizes, in multiples of the interview")
    p.add_argument("--repeat", type=int, default=3, help="runs per measurement (default: %(default)s)")
    p.add_argument("--json", type=Path, default=OUT / "bench.json", help="results (default: %(default)s)")
    args = p.parse_args(argv)
    try:
        sizes = sorted({int(s) for s in args.sizes.split(",") if s.strip()})
    except ValueError:
        p.error("--sizes takes whole numbers separated by commas, e.g. 1,10,100")
    if not sizes or min(sizes) < 1 or args.repeat < 1:
        p.error("sizes and --repeat must be at least 1")

    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from embeddings.model import Embedder

    def say(message: str) -> None:
        print(f"{time.strftime('%H:%M:%S')} {message}", file=sys.stderr, flush=True)

    began, before = time.perf_counter(), machine()
    questions = load_questions()
    say(f"{len(questions)} questions; sizes {sizes}; {args.repeat} runs")
    embedder = Embedder()
    embedder.encode(["warm-up"])
    results = {size: bench_size(size, args.repeat, questions, embedder, say) for size in sizes}
    targets = checks(results)
    text = report(results, targets, args.repeat, len(questions))
    print(text)
    elapsed = time.perf_counter() - began
    print(f"\n{elapsed:.0f} s in all; load average before {before['loadavg']}, after {os.getloadavg()}")
    out = {"machine": before, "loadavg_after": os.getloadavg(), "elapsed_s": elapsed,
           "questions": questions, "repeat": args.repeat,
           "sizes": {str(k): v for k, v in results.items()}, "targets": targets}  # fmt: skip
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(out, indent=1) + "\n", encoding="utf-8")
    print(f"results: {args.json}")
    return 1 if any(t["result"] == "FAIL" for t in targets) else 0


if __name__ == "__main__":
    sys.exit(main())
