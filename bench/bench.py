"""Latency, start-up, build throughput and memory of the app, against what the model alone costs.

python bench/bench.py [--sizes 1,10,100] [--repeat N] [--json PATH]

For each size (1 = data/interview.txt; N = a synthetic transcript of about N times its passages,
generated deterministically under bench/out/), in one run:

- query floor: `Embedder().encode([q])` plus `dense_search(engine.index, v, 64)`, in-process;
- `Engine.ask` in-process and `GET /api/ask` of a running `app.py` (keep-alive connection),
  p50 and p95 over a fixed list of questions, and their ratios to the floor; each run times
  the three one after the other, in an order that rotates from run to run;
- start-up of `app.py` to `/healthz` 200 with the index cached and with no index, against the
  floor `python -c "import gradio, sentence_transformers, faiss"` (run alternately with the
  cached start-ups, timed until the imports are done: the interpreter's exit is not counted);
- index build throughput of `Engine(...)` on a fresh index dir (with an already loaded model)
  against `Embedder.encode` alone on the same passage texts;
- peak RSS (VmHWM) of the app process after the query runs.

Every figure is the median over repeated runs, with min and max. Heavy steps (builds, start-ups
with no index) are repeated fewer times on large corpora, so that the whole run stays short:
the count used is in the table and the JSON. The targets are checked at the end (PASS/FAIL,
with a caveat when the runs disagree); the exit status is 1 when one fails. The JSON goes to
bench/out/bench.json unless --json says otherwise.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

# Run as a script, bench/ comes first on sys.path and `bench` would be this file, not the package.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.api_client import ApiClient
from bench.app_process import App, import_floor
from bench.corpus import OUT, PROJECT, corpus
from bench.report import checks, report
from bench.stats import fmt, percentile, spread

if TYPE_CHECKING:
    from embeddings.model import Embedder
    from qa.engine import Engine

QUESTIONS_FILE = PROJECT.parent / "shared" / "eval" / "questions.jsonl"
N_QUESTIONS = 20
DENSE_K = 64
HEAVY_BUDGET = 3000  # passages: builds and no-index start-ups above this many run once per size

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


def heavy_repeats(repeat: int, passages: int) -> int:
    return max(1, min(repeat, HEAVY_BUDGET // max(passages, 1)))


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
    result: dict[str, Any] = {"size": size, "data": str(data.relative_to(PROJECT)), "passages": n,
                              "repeats": repeat, "heavy_repeats": heavy}  # fmt: skip
    say(f"[{size}x] {n} passages; build x{heavy}")

    result["build"], engine, cached = build_throughput(data, texts, heavy, embedder, size)
    say(f"[{size}x] build {fmt(result['build']['engine_per_s'], digits=0)} passages/s, "
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
