"""Index backends side by side: the FAISS folder against Qdrant's embedded mode, by corpus size.

python bench/backends.py [--sizes 1,100,1300] [--backends faiss,qdrant] [--json PATH]

For each size (1 = data/interview.txt; N = bench/corpus.py's synthetic transcript of about N times
its 76 passages, ~99k at 1300) and each backend (`embeddings.index.FaissFolder`;
`embeddings.qdrant.QdrantStore` on `connect(path=DIR)`, as `python -m qa --qdrant-path` builds it):

- build, in a fresh child process on an empty folder: `Engine(...)` (parse, embed, save, rank
  tables), with `backend.save` timed alone: store throughput = windows / save seconds;
- serve, in another fresh child process: open the folder (for Qdrant, `connect`, which reads every
  point into memory) and `Engine(...)` on it: load seconds; then ~50 questions (the public set and
  its paraphrases), one timed pass each after a warm-up, through `Engine.ask` and through the dense
  search alone (`engine.index.search`, k=64, the query vector made beforehand): p50 and p95;
- peak RSS (VmHWM) of each child, and the index's size on disk after the build.

Embedding is not what differs between backends, and the real model (all-MiniLM-L6-v2) would take
~20 minutes per build at 1300x, so builds and queries embed with FastEmbedder: the model's own
tokenizer and dimension (384), one hash-seeded vector per word piece (as many token vectors as the
model gives), a text the unit sum of its pieces. Vectors cost the backends what real ones do; ask
latency here leaves out the model's query encoding, and RSS leaves out the model and its working
memory (the stand-in makes token vectors only for the windows sync keeps, the model for all). The
model is measured once, in its own child, on the 1x interview's windows (encode rate, query-encode
latency, RSS), and the build re-estimated with its encode time in place of the stand-in's:
est. windows/s = windows / (windows / encode rate + build s - fast embed s), where build s - fast
embed s is what the build does besides embedding (parse, save, rank tables).

One run of each, no repeats: builds at 1300x take minutes. A child that runs past its time limit or
past the RSS cap is killed and reported with what it had done by then (points written, RSS, disk),
never dropped. Qdrant's builds go through a client wrapper that counts points and the time spent in
each client call, which says where Qdrant's time goes. The load average (other work may share the
cores) is recorded at start and end, and each child's CPU seconds beside its wall time. Prints a
Markdown table; JSON goes to bench/out/backends.json. Index folders live under bench/out/backends/
and are removed after each size unless --keep.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

# Run as a script, bench/ comes first on sys.path and `bench` would be this file, not the package.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.corpus import OUT, PROJECT, corpus
from bench.stats import percentile

DIM = 384  # all-MiniLM-L6-v2's
DENSE_K = 64  # qa.retrieve.CANDIDATES: what Ranker asks the index for
N_QUESTIONS = 50
EVAL = PROJECT.parent / "shared" / "eval"
WORK = OUT / "backends"
MiB = 2**20
Figures = dict[str, Any]
WANTED = ("VmRSS", "VmHWM")


# --- the stand-in embedder ------------------------------------------------------------------------


class Lazy(Sequence):
    """A list whose items are made when read: sync keeps the token vectors of single sentences
    only, so those of longer windows (most of them) are never made, nor held."""

    def __init__(self, n: int, make: Callable[[int], Any]) -> None:
        self.n, self.make = n, make

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i):  # type: ignore[override]
        if isinstance(i, slice):
            return [self.make(j) for j in range(*i.indices(self.n))]
        if not -self.n <= i < self.n:
            raise IndexError(i)
        return self.make(i % self.n)


class FastEmbedder:
    """The `Embedder` interface at a small fraction of the model's cost, with its shapes: the
    model's tokenizer splits each text into the same word pieces, each piece has a unit vector
    seeded by its text (so texts sharing pieces are close, and every run is the same), a text's
    vector is the unit sum of its pieces'. Token vectors are float16 like the model's."""

    name = "bench-fast-384"
    dim = DIM

    def __init__(self) -> None:
        from tokenizers import Tokenizer

        from embeddings.model import locate

        self.tokenizer = Tokenizer.from_file(str(locate(None)[0] / "tokenizer.json"))
        self.tokenizer.no_padding()
        self.tokenizer.no_truncation()
        size = self.tokenizer.get_vocab_size()
        self.table = np.zeros((size, DIM), np.float32)
        self.half = np.zeros((size, DIM), np.float16)
        self.made = np.zeros(size, bool)
        self.seconds = 0.0  # spent in encode_tokens, which the build's estimate replaces

    @property
    def identity(self) -> dict[str, str]:
        return {"name": self.name, "weights_sha256": hashlib.sha256(self.name.encode()).hexdigest()}

    def pieces(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """Word-piece ids of all texts, flat, and where each text's start (len(texts) + 1)."""
        flat: list[np.ndarray] = []
        for i in range(0, len(texts), 4096):  # a tokenizer Encoding per text is heavy: few at a time
            out = self.tokenizer.encode_batch(texts[i : i + 4096], add_special_tokens=False)
            flat += [np.asarray(e.ids, np.int64) for e in out]
        starts = np.concatenate([[0], np.cumsum([len(f) for f in flat])]).astype(np.int64)
        return (np.concatenate(flat) if flat else np.zeros(0, np.int64)), starts

    def _make(self, ids: np.ndarray) -> None:
        for i in np.unique(ids[~self.made[ids]]):
            seed = int.from_bytes(hashlib.sha256(self.tokenizer.id_to_token(int(i)).encode()).digest()[:8])
            v = np.random.default_rng(seed).standard_normal(DIM).astype(np.float32)
            self.table[i] = v / np.linalg.norm(v)
            self.half[i] = self.table[i]
            self.made[i] = True

    def encode_tokens(
        self, texts: list[str], batch_size: int = 64, progress: bool = False
    ) -> tuple[np.ndarray, Sequence[np.ndarray], Sequence[list[str]]]:
        from scipy import sparse

        t0 = time.perf_counter()
        flat, starts = self.pieces(list(texts))
        self._make(flat)
        counts = sparse.csr_matrix(
            (np.ones(len(flat), np.float32), flat, starts), shape=(len(texts), len(self.table))
        )
        vectors = np.asarray(counts @ self.table, dtype=np.float32)
        vectors /= np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-9)
        ids: Callable[[int], np.ndarray] = lambda i: flat[starts[i] : starts[i + 1]]  # noqa: E731
        tokens = Lazy(len(texts), lambda i: self.half[ids(i)])
        names = Lazy(len(texts), lambda i: list(map(self.tokenizer.id_to_token, ids(i).tolist())))
        self.seconds += time.perf_counter() - t0
        return np.ascontiguousarray(vectors), tokens, names

    def encode(self, texts: list[str], batch_size: int = 64, progress: bool = False) -> np.ndarray:
        return self.encode_tokens(texts)[0]


# --- in a child process ---------------------------------------------------------------------------


def proc_status(pid: int | str = "self") -> dict[str, int]:
    """VmRSS and VmHWM in bytes (0 once the process is gone)."""
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    except OSError:
        return {"VmRSS": 0, "VmHWM": 0}
    found = {k: int(v.split()[0]) * 1024 for k, _, v in (x.partition(":") for x in lines) if k in WANTED}
    return {k: found.get(k, 0) for k in WANTED}  # a zombie has no memory lines


def used() -> Figures:
    """This process's memory and CPU seconds (of all its threads), to set against its wall time."""
    return {**proc_status(), "cpu_s": time.process_time()}


class Progress:
    """JSON lines a child appends as it goes, so that a child killed for time or memory still
    says how far it got."""

    def __init__(self, path: Path) -> None:
        self.path, self.t0, self.last = path, time.perf_counter(), 0.0

    def note(self, force: bool = True, **fields: Any) -> None:
        now = time.perf_counter()
        if force or now - self.last >= 5:
            self.last = now
            line = {"t": round(now - self.t0, 2), "rss": proc_status()["VmRSS"], **fields}
            with open(self.path, "a", encoding="utf-8") as f:
                f.write(json.dumps(line) + "\n")


class Metered:
    """A Qdrant client that counts calls, points and seconds per method: where Qdrant's time goes."""

    def __init__(self, client: Any, progress: Progress) -> None:
        self._client, self._progress = client, progress
        self.seconds: dict[str, float] = defaultdict(float)
        self.calls: Counter[str] = Counter()
        self.points: Counter[str] = Counter()
        self.first_upsert: float | None = None  # when the first upsert began, on the progress clock

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._client, name)
        if not callable(attr):
            return attr

        def call(*args: Any, **kwargs: Any) -> Any:
            t0 = time.perf_counter()
            if name == "upsert" and self.first_upsert is None:
                self.first_upsert = round(t0 - self._progress.t0, 2)
            out = attr(*args, **kwargs)
            self.seconds[name] += time.perf_counter() - t0
            self.calls[name] += 1
            if name == "upsert":
                self.points[name] += len(args[1] if len(args) > 1 else kwargs["points"])
            elif name == "scroll":
                self.points[name] += len(out[0])
            if name in ("upsert", "scroll"):
                self._progress.note(force=False, **self.figures())
            return out

        return call

    def figures(self) -> dict[str, Any]:
        return {"client_s": {k: round(v, 2) for k, v in self.seconds.items()}, "calls": dict(self.calls),
                "points": dict(self.points), "first_upsert_t": self.first_upsert}  # fmt: skip


def open_backend(kind: str, folder: Path, progress: Progress) -> tuple[Callable, Metered | None, float]:
    """The Engine's `backend` factory (as qa/cli.py's backend_from makes it), with its open time."""
    from embeddings import index as store

    if kind == "faiss":
        return store.FaissFolder, None, 0.0
    from embeddings.qdrant import QdrantStore, connect

    path = folder / "qdrant"
    t0 = time.perf_counter()
    client = Metered(connect(path=path), progress)  # embedded mode reads every point here
    opened = time.perf_counter() - t0
    return (lambda _dir, model: QdrantStore(client, model, str(path), embedded=True)), client, opened


def timed_backend(factory: Callable, seconds: dict[str, float]) -> Callable:
    """The factory, with the backend's save and load timed into `seconds`."""

    def make(index_dir: Path, model: dict[str, str]) -> Any:
        backend = factory(index_dir, model)
        for name in ("save", "load"):
            real = getattr(backend, name)

            def wrapped(*args: Any, _real: Callable = real, _name: str = name, **kwargs: Any) -> Any:
                t0 = time.perf_counter()
                try:
                    return _real(*args, **kwargs)
                finally:
                    seconds[_name] = seconds.get(_name, 0.0) + time.perf_counter() - t0

            setattr(backend, name, wrapped)
        return backend

    return make


def timed_engine(size: int, kind: str, folder: Path, progress: Progress, embedder: FastEmbedder, phase: str):
    """Open the backend, then time `Engine(...)` over the corpus: (engine, client, open s,
    seconds per backend call, engine s). Building and serving differ only in the folder's state."""
    from qa.engine import Engine

    factory, client, opened = open_backend(kind, folder, progress)
    seconds: dict[str, float] = {}
    progress.note(phase=phase)
    t0 = time.perf_counter()
    engine = Engine(corpus(size), folder, embedder=embedder, backend=timed_backend(factory, seconds),  # type: ignore[arg-type]
                    progress=False, log=lambda m: None)  # fmt: skip
    return engine, client, opened, seconds, time.perf_counter() - t0


def child_build(size: int, kind: str, folder: Path, progress: Progress) -> dict[str, Any]:
    """Engine(...) on an empty folder with the fast embedder."""

    embedder = FastEmbedder()
    engine, client, opened, seconds, build = timed_engine(size, kind, folder, progress, embedder, "build")
    assert engine.report.saved, "the backend could not save"
    return {"passages": len(engine.passages), "windows": len(engine.vectors), "open_s": opened,
            "build_s": build, "save_s": seconds.get("save", 0.0), "fast_embed_s": embedder.seconds,
            "token_vectors": int(len(engine.tokens)), "qdrant": client.figures() if client else None,
            **used()}  # fmt: skip


def questions() -> list[str]:
    """The public questions, then their paraphrases, N_QUESTIONS in all."""
    found = []
    for name in ("questions.jsonl", "paraphrases.jsonl"):
        lines = (EVAL / name).read_text(encoding="utf-8").splitlines()
        found += [row["question"] for row in map(json.loads, filter(None, lines)) if row.get("question")]
    return found[:N_QUESTIONS]


def quantiles(samples: list[float]) -> dict[str, float]:
    return {"p50": percentile(samples, 50), "p95": percentile(samples, 95), "n": len(samples)}


def child_serve(size: int, kind: str, folder: Path, progress: Progress) -> dict[str, Any]:
    """Engine(...) on the stored index, then the questions through ask and the dense search."""

    embedder = FastEmbedder()
    progress.note(phase="open")
    engine, client, opened, seconds, engine_s = timed_engine(size, kind, folder, progress, embedder, "engine")
    if engine.report.embedded_passages:
        raise SystemExit(f"the stored index was not used: {engine.report.embedded_passages} windows embedded")
    after_load = proc_status()
    progress.note(phase="queries")
    asked = questions()
    vectors = embedder.encode(asked)
    for q, v in zip(asked[:3], vectors[:3], strict=True):  # warm-up
        engine.ask(q)
        engine.index.search(v.reshape(1, -1), DENSE_K)
    ask, dense = [], []
    for q in asked:
        t = time.perf_counter()
        engine.ask(q)
        ask.append(time.perf_counter() - t)
    for v in vectors:
        t = time.perf_counter()
        engine.index.search(v.reshape(1, -1), DENSE_K)
        dense.append(time.perf_counter() - t)
    return {"load_s": opened + engine_s, "open_s": opened, "engine_s": engine_s,
            "backend_load_s": seconds.get("load", 0.0), "ask_s": quantiles(ask), "dense_s": quantiles(dense),
            "rss_after_load": after_load["VmRSS"], "hwm_after_load": after_load["VmHWM"],
            "qdrant": client.figures() if client else None, **used()}  # fmt: skip


def child_encode(progress: Progress) -> dict[str, Any]:
    """The real model on the 1x interview's windows: encode rate, query encode, RSS, pieces."""
    from embeddings.model import Embedder
    from qa.engine import load_transcripts
    from qa.retrieve import window_text, windows

    _, _, transcripts, _ = load_transcripts(corpus(1), log=lambda m: None)
    passages = [p for t in transcripts.values() for p in t.passages]
    texts = [window_text(passages, w) for w in windows(passages)]
    model = Embedder()
    model.encode_tokens(texts[:16])  # loads the model
    runs, cpu = [], []
    for _ in range(3):
        t0, c0 = time.perf_counter(), time.process_time()
        _, tokens, _ = model.encode_tokens(texts)
        runs.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)  # of all threads: under 2x wall when other work shares the cores
    alone = [i for i, w in enumerate(windows(passages)) if w.first == w.last]  # single sentences
    single = [tokens[i] for i in alone]
    fast = FastEmbedder().encode_tokens([texts[i] for i in alone])[1]
    query = []
    for q in questions():
        t0 = time.perf_counter()
        model.encode_tokens([q])
        query.append(time.perf_counter() - t0)
    return {"windows": len(texts), "encode_runs_s": runs, "encode_cpu_s": cpu,
            "encode_per_s": len(texts) / statistics.median(runs), "query_encode_s": quantiles(query),
            "pieces_per_sentence": float(np.mean([len(t) for t in single])),
            "fast_pieces_per_sentence": float(np.mean([len(t) for t in fast])), **used()}  # fmt: skip


def child(args: argparse.Namespace) -> int:
    progress = Progress(args.result.with_suffix(".progress"))
    if args.child == "encode":
        result = child_encode(progress)
    elif args.child == "build":
        result = child_build(args.size, args.backend, args.dir, progress)
    else:
        result = child_serve(args.size, args.backend, args.dir, progress)
    args.result.write_text(json.dumps(result, indent=1), encoding="utf-8")
    return 0


# --- the parent -----------------------------------------------------------------------------------


def say(message: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} {message}", file=sys.stderr, flush=True)


def disk_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) if folder.exists() else 0


def run_child(kind: str, tag: str, extra: list[str], limit_s: float, cap_bytes: int) -> dict[str, Any]:
    """One child to its end, or killed past `limit_s` seconds or `cap_bytes` of RSS: its result,
    or `status` saying why not with its last progress line and the largest RSS seen."""
    logs = WORK / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    result, progress = logs / f"{tag}.json", logs / f"{tag}.progress"
    result.unlink(missing_ok=True)
    progress.unlink(missing_ok=True)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "GRADIO_ANALYTICS_ENABLED": "False",
           "TOKENIZERS_PARALLELISM": "false"}  # fmt: skip
    command = [sys.executable, str(Path(__file__).resolve()), "--child", kind, "--result", str(result)]
    command += extra
    t0, peak, status = time.perf_counter(), 0, "ok"
    with open(logs / f"{tag}.log", "wb") as log:
        proc = subprocess.Popen(command, cwd=PROJECT, env=env, stdout=log, stderr=subprocess.STDOUT)
        while proc.poll() is None:
            peak = max(peak, proc_status(proc.pid)["VmRSS"])
            if time.perf_counter() - t0 > limit_s or peak > cap_bytes:
                status = "timed out" if peak <= cap_bytes else "over the RSS cap"
                proc.kill()  # this child only, by its own handle
                proc.wait()
                break
            time.sleep(0.5)
    wall = time.perf_counter() - t0
    if status == "ok" and proc.returncode != 0:
        tail = (logs / f"{tag}.log").read_text(encoding="utf-8", errors="replace").strip().splitlines()[-3:]
        status = f"failed (exit {proc.returncode}): {' | '.join(tail)}"
    out: dict[str, Any] = json.loads(result.read_text(encoding="utf-8")) if status == "ok" else {}
    lines = progress.read_text(encoding="utf-8").splitlines() if progress.exists() else []
    out.update(status=status, wall_s=wall, max_rss_seen=peak)
    out["last_progress"] = json.loads(lines[-1]) if lines else None
    return out


def run_pair(size: int, kind: str, args: argparse.Namespace, cap: int) -> dict[str, Any]:
    folder = WORK / f"{size}x-{kind}"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    extra = ["--size", str(size), "--backend", kind, "--dir", str(folder)]
    say(f"[{size}x {kind}] build…")
    probe = commit_latency() if kind == "qdrant" else None
    build = run_child("build", f"{size}x-{kind}-build", extra, args.build_timeout, cap)
    if probe:
        build["sqlite_commit_s"] = {"before": probe, "after": commit_latency()}
    build["disk_bytes"] = disk_bytes(folder)
    say(f"[{size}x {kind}] build {build['status']}: {build.get('build_s', build['wall_s']):.1f} s, "
        f"disk {build['disk_bytes'] / MiB:.0f} MiB")  # fmt: skip
    if build["status"] != "ok":  # what it had to do, to say how far it got
        from qa.engine import load_transcripts
        from qa.retrieve import windows

        _, _, transcripts, _ = load_transcripts(corpus(size), log=lambda m: None)
        build["passages"] = sum(len(t.passages) for t in transcripts.values())
        build["windows"] = sum(len(windows(t.passages)) for t in transcripts.values())
    if build["status"] == "ok":
        say(f"[{size}x {kind}] serve…")
        serve = run_child("serve", f"{size}x-{kind}-serve", extra, args.serve_timeout, cap)
        say(f"[{size}x {kind}] serve {serve['status']}: load {serve.get('load_s', serve['wall_s']):.1f} s")
    else:
        serve = {"status": "not run: the build did not finish"}
    if not args.keep:
        shutil.rmtree(folder, ignore_errors=True)
    return {"size": size, "backend": kind, "build": build, "serve": serve}


def partial_rate(build: dict[str, Any]) -> float:
    """Points/s of a build cut short, from its first upsert to its last progress line."""
    last = build["last_progress"]
    return last["points"]["upsert"] / max(last["t"] - (last["first_upsert_t"] or 0.0), 1e-9)


def estimate(build: dict[str, Any], encode_per_s: float) -> float | None:
    """Windows/s of the build with the real model's encode time in place of the fast embedder's."""
    if build.get("status") != "ok":
        return None
    return build["windows"] / (build["windows"] / encode_per_s + build["build_s"] - build["fast_embed_s"])


def table(rows: list[dict[str, Any]], encode: dict[str, Any]) -> str:
    """The Markdown table, one row per size and backend; a step cut short shows how far it got."""
    head = ["size", "backend", "passages", "windows (points)", "build s", "save s", "store win/s",
            "est. real-model build win/s", "load s", "ask p50 / p95 ms", "dense p50 / p95 ms",
            "build peak MiB", "serve peak MiB", "disk MiB"]  # fmt: skip
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    encode_rate = encode.get("encode_per_s")

    def num(x: float) -> str:  # three significant figures or so
        return f"{x:,.0f}" if x >= 100 else f"{x:.1f}" if x >= 10 else f"{x:.2f}"

    def ms(s: dict[str, Any], key: str) -> str:
        return f"{num(s[key]['p50'] * 1000)} / {num(s[key]['p95'] * 1000)}"

    def peak(step: dict[str, Any]) -> str:
        if "VmHWM" in step:
            return f"{step['VmHWM'] / MiB:,.0f}"
        return f"≥{step['max_rss_seen'] / MiB:,.0f}" if step.get("max_rss_seen") else "-"

    for r in rows:
        b, s = r["build"], r["serve"]
        if b["status"] == "ok":
            real = f"{estimate(b, encode_rate):,.0f}" if encode_rate else "-"
            built = [num(b["build_s"]), num(b["save_s"]), f"{b['windows'] / b['save_s']:,.0f}", real]
        else:
            done = ((b.get("last_progress") or {}).get("points") or {}).get("upsert", 0)
            rate = f"{partial_rate(b):,.0f} (first {done:,} points)" if done else "-"
            built = [f"{b['status']} after {b['wall_s']:.0f} s", "-", rate, "-"]
        if s["status"] == "ok":
            served = [num(s["load_s"]), ms(s, "ask_s"), ms(s, "dense_s")]
        else:
            served = [s["status"] + (f" after {s['wall_s']:.0f} s" if "wall_s" in s else ""), "-", "-"]
        cells = [f"{r['size']}x", r["backend"], f"{b['passages']:,}", f"{b['windows']:,}", *built, *served,
                 peak(b), peak(s), num(b["disk_bytes"] / MiB)]  # fmt: skip
        out.append("| " + " | ".join(cells) + " |")
    return "\n".join(out)


def notes(rows: list[Figures], encode: Figures, before: Figures, after: Figures, wall: float) -> str:
    """What the table leaves out: the real model's figures, builds cut short, the machine's load."""
    lines = ["", "Builds and queries embed with a fast stand-in (the model's word pieces, 384 dimensions): "
             "latencies leave out the model's query encoding, RSS leaves out the model."]  # fmt: skip
    if encode.get("status") == "ok":
        q, median = encode["query_encode_s"], statistics.median
        cpu, wall_s = median(encode["encode_cpu_s"]), median(encode["encode_runs_s"])
        lines.append(
            f"Real model (all-MiniLM-L6-v2) on the 1x interview's {encode['windows']} windows: "
            f"{encode['encode_per_s']:.0f} windows/s ({cpu:.1f} CPU s of its threads per {wall_s:.1f} s: "
            f"~2x on 2 idle CPUs); query encode p50 {q['p50'] * 1000:.1f} ms, p95 {q['p95'] * 1000:.1f} ms; "
            f"its process peaks at {encode['VmHWM'] / MiB:.0f} MiB. Word pieces per sentence: model "
            f"{encode['pieces_per_sentence']:.1f}, stand-in {encode['fast_pieces_per_sentence']:.1f}."
        )  # fmt: skip
        lines.append("est. real-model build win/s = windows / (windows / real encode rate + build s "
                     "- fast embed s).")  # fmt: skip
    else:
        lines.append(f"Real model measurement: {encode.get('status')}")
    for r in rows:
        b = r["build"]
        done = ((b.get("last_progress") or {}).get("points") or {}).get("upsert", 0)
        if b["status"] != "ok" and done:
            rate = partial_rate(b)
            lines.append(
                f"{r['size']}x {r['backend']}: build {b['status']} after {b['wall_s']:.0f} s, {done:,} of "
                f"{b['windows']:,} points stored at {rate:.0f} points/s. At that rate storing them all would "
                f"take ~{b['windows'] / rate / 60:.0f} min (embedding aside), and the index would take "
                f"~{b['disk_bytes'] / done * b['windows'] / 2**30:.1f} GiB on disk: upper bounds, since the "
                f"first {b['passages']:,} points (single sentences) are the ones with token vectors."
            )  # fmt: skip
    for r in rows:
        b, q = r["build"], r["build"].get("qdrant") or {}
        if r["backend"] == "qdrant" and "sqlite_commit_s" in b:
            c = b["sqlite_commit_s"]
            upsert = f"{q['client_s'].get('upsert', 0):.0f} s in the client's upsert, " if q else ""
            cpu = f"{b['cpu_s']:.0f} CPU s in " if "cpu_s" in b else ""
            before_ms, after_ms = (c[k]["p50"] * 1000 for k in ("before", "after"))
            served = r["serve"]
            scroll = (served.get("qdrant") or {}).get("client_s", {}).get("scroll")
            read = (
                f" Serve: {scroll:.0f} s of its {served['load_s']:.0f} s load in the client's scroll."
                if scroll
                else ""
            )
            lines.append(
                f"{r['size']}x qdrant build: {upsert}{cpu}{b.get('build_s', b['wall_s']):.0f} s; a 100 KB "
                f"sqlite commit took {before_ms:.1f} ms (p50) before it, {after_ms:.1f} ms after.{read}"
            )  # fmt: skip
    commits = [m["sqlite_commit_s"]["p50"] * 1000 for m in (before, after)]
    changed = [name for name in CODE if before["code"][name] != after["code"][name]]
    if changed:
        lines.append(f"WARNING: {', '.join(changed)} changed during the run: rows may measure other code.")
    lines.append(f"Load average (1, 5, 15 min) at start {before['loadavg']}, at end {after['loadavg']}; "
                 f"{before['cpus']} CPUs; 100 KB sqlite commit p50 {commits[0]:.1f} ms at start, "
                 f"{commits[1]:.1f} ms at end; {wall / 60:.1f} min in all.")  # fmt: skip
    return "\n".join(lines)


def commit_latency(n: int = 200, size: int = 100_000) -> dict[str, float]:
    """Seconds per sqlite commit of one `size`-byte row, p50 and p95, in bench/out: Qdrant's
    embedded mode commits each point so, and the disk's sync latency, which other work on the
    machine changes, sets its build rate."""
    import sqlite3

    WORK.mkdir(parents=True, exist_ok=True)
    path = WORK / "commit-probe.sqlite"
    path.unlink(missing_ok=True)
    blob, samples = os.urandom(size), []
    db = sqlite3.connect(path)
    try:
        db.execute("CREATE TABLE points (id TEXT PRIMARY KEY, point BLOB)")
        db.commit()
        for i in range(n):
            t0 = time.perf_counter()
            with db:
                db.execute("INSERT OR REPLACE INTO points VALUES (?, ?)", (str(i), blob))
            samples.append(time.perf_counter() - t0)
    finally:
        db.close()
        path.unlink(missing_ok=True)
    return quantiles(samples)


CODE = ("embeddings/index.py", "embeddings/qdrant.py", "qa/engine.py", "qa/retrieve.py", "qa/transcript.py")


def code() -> dict[str, str]:
    """sha256 of the code measured, to tell whether it changed while the run went on."""
    return {name: hashlib.sha256((PROJECT / name).read_bytes()).hexdigest()[:16] for name in CODE}


def machine() -> dict[str, Any]:
    uptime = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    meminfo = Path("/proc/meminfo").read_text().splitlines()
    memory = {k: v.strip() for k, _, v in (x.partition(":") for x in meminfo)}
    return {"uptime": uptime, "loadavg": [round(x, 2) for x in os.getloadavg()], "cpus": os.cpu_count(),
            "mem_available": memory.get("MemAvailable"), "python": platform.python_version(),
            "sqlite_commit_s": commit_latency(), "code": code(),
            "time": time.strftime("%Y-%m-%d %H:%M:%S")}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", default="1,100,1300", help="corpus sizes, in multiples of the interview")
    p.add_argument("--backends", default="faiss,qdrant", help="faiss, qdrant or both")
    p.add_argument("--build-timeout", type=float, default=1500, help="seconds per build (%(default)s)")
    p.add_argument("--serve-timeout", type=float, default=1200, help="seconds per serve run (%(default)s)")
    p.add_argument("--max-rss-gib", type=float, default=None,
                   help="kill a child above this RSS (default: 75%% of MemAvailable, <= 20)")  # fmt: skip
    p.add_argument("--keep", action="store_true", help="keep the index folders under bench/out/backends/")
    p.add_argument("--json", type=Path, default=OUT / "backends.json", help="results (default: %(default)s)")
    p.add_argument("--child", choices=["encode", "build", "serve"], help=argparse.SUPPRESS)
    p.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    p.add_argument("--size", type=int, help=argparse.SUPPRESS)
    p.add_argument("--backend", choices=["faiss", "qdrant"], help=argparse.SUPPRESS)
    p.add_argument("--dir", type=Path, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        return child(args)
    try:
        sizes = sorted({int(s) for s in args.sizes.split(",") if s.strip()})
    except ValueError:
        p.error("--sizes takes whole numbers separated by commas, e.g. 1,100,1300")
    kinds = [b.strip() for b in args.backends.split(",") if b.strip()]
    if not sizes or min(sizes) < 1 or not kinds or set(kinds) - {"faiss", "qdrant"}:
        p.error("sizes must be at least 1; backends are faiss and qdrant")

    began, before = time.perf_counter(), machine()
    available = int(before["mem_available"].split()[0]) * 1024 if before["mem_available"] else 16 * 2**30
    cap = int(args.max_rss_gib * 2**30) if args.max_rss_gib else min(20 * 2**30, int(0.75 * available))
    say(f"{before['uptime']}; RSS cap {cap / 2**30:.1f} GiB; sizes {sizes}; backends {kinds}")
    for size in sizes:
        corpus(size)  # written once here, not by two children at once
    say("real model encode rate…")
    encode = run_child("encode", "encode", [], 600, cap)
    if encode["status"] == "ok":
        say(f"real model: {encode['encode_per_s']:.0f} windows/s")
    rows = [run_pair(size, kind, args, cap) for size in sizes for kind in kinds]
    after, wall = machine(), time.perf_counter() - began
    text = table(rows, encode) + "\n" + notes(rows, encode, before, after, wall)
    print(text)
    out = {"command": " ".join([Path(sys.executable).name, *sys.argv]), "machine_start": before,
           "machine_end": after, "wall_s": wall, "rss_cap_bytes": cap, "questions": questions(),
           "real_model": encode, "rows": rows, "markdown": text}  # fmt: skip
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(out, indent=1) + "\n", encoding="utf-8")
    print(f"\nresults: {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
