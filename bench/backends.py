"""Index backends side by side: the FAISS folder against Qdrant Edge, by corpus size.

python bench/backends.py [--sizes 1,1300,6100] [--backends faiss,edge] [--json PATH]

For each size (1 = data/interview.txt, 166 windows; N = bench/corpus.py's synthetic transcript of
about N times it: 1300x ~214k windows, 6100x ~1M) and each backend (`embeddings.index.FaissFolder`;
`embeddings.edge.EdgeStore`, as `python -m qa --backend qdrant --qdrant-path DIR` opens it):

- build, in a fresh child process on an empty folder: `Engine(...)` (parse, embed, save);
- serve, in another fresh child process: the backend's own load timed alone ("open": the FAISS
  files memory-mapped and hashed, or the Edge shard loaded and its record checked), and
  `Engine(...)` on it (open + parsing the transcripts + ranking tables); then ~50 questions (the
  public set and its paraphrases), one timed pass each after a warm-up, through `Engine.ask` and
  through the dense floor alone (`engine.index.search`, k=64, the query vector made beforehand):
  p50 and p95; RSS of the serving process after its questions, anonymous (its own memory) and in
  all (with the index's pages in the page cache, shared and evictable);
- peak RSS (VmHWM) of the build, and the index's size on disk.

Embedding is not what differs between backends, so builds and queries embed with FastEmbedder: the
model's own tokenizer and dimension (384), one hash-seeded vector per word piece (as many token
vectors as the model gives), a text the unit sum of its pieces. Vectors cost the backends what real
ones do; ask latency leaves out the model's query encoding (~10 ms), RSS the model (~0.4 GiB). The
real model is measured once, in its own child, on the 1x interview (encode rate, query encode).

One run of each, no repeats. A child that runs past its time limit or past the RSS cap is killed
and reported with how far it got. Prints a Markdown table; JSON goes to bench/out/backends.json.
Index folders live under bench/out/backends/ and are removed after each size unless --keep.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import time
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
WANTED = ("VmRSS", "VmHWM", "RssAnon", "RssFile")


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
    """VmRSS, VmHWM, RssAnon (this process's own memory) and RssFile (mapped files) in bytes."""
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    except OSError:
        return dict.fromkeys(WANTED, 0)
    found = {k: int(v.split()[0]) * 1024 for k, _, v in (x.partition(":") for x in lines) if k in WANTED}
    return {k: found.get(k, 0) for k in WANTED}  # a zombie has no memory lines


def used() -> Figures:
    """This process's memory and CPU seconds (of all its threads), to set against its wall time."""
    return {**proc_status(), "cpu_s": time.process_time()}


class Progress:
    """JSON lines a child appends as it goes, so that a child killed for time or memory still
    says how far it got."""

    def __init__(self, path: Path) -> None:
        self.path, self.t0 = path, time.perf_counter()

    def note(self, **fields: Any) -> None:
        line = {"t": round(time.perf_counter() - self.t0, 2), "rss": proc_status()["VmRSS"], **fields}
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(line) + "\n")


def open_backend(kind: str, folder: Path) -> Callable:
    """The Engine's `backend` factory, as qa/cli.py's backend_from makes it."""
    from embeddings import index as store

    if kind == "faiss":
        return store.FaissFolder
    from embeddings import edge

    shards = edge.connect(folder / "qdrant")
    return lambda _dir, model: edge.EdgeStore(shards, model)


def timed_backend(factory: Callable, seconds: dict[str, float]) -> Callable:
    """The factory, with the backend's save and load timed into `seconds`."""

    def make(index_dir: Path, model: dict[str, str]) -> Any:
        backend = factory(index_dir, model)
        for name in ("save", "load"):
            real = getattr(backend, name)

            def wrapped(*args: Any, _real: Callable = real, _name: str = name, **kwargs: Any) -> Any:
                t0, c0 = time.perf_counter(), time.process_time()
                try:
                    return _real(*args, **kwargs)
                finally:
                    seconds[_name] = seconds.get(_name, 0.0) + time.perf_counter() - t0
                    seconds[f"{_name}_cpu"] = seconds.get(f"{_name}_cpu", 0.0) + time.process_time() - c0

            setattr(backend, name, wrapped)
        return backend

    return make


def timed_engine(size: int, kind: str, folder: Path, embedder: FastEmbedder):
    """`Engine(...)` over the corpus: (engine, seconds per backend call, engine s). Building and
    serving differ only in the folder's state."""
    from qa.engine import Engine

    seconds: dict[str, float] = {}
    data = corpus(size)  # the parent wrote it; made again here to check, not part of the time
    t0 = time.perf_counter()
    backend = timed_backend(open_backend(kind, folder), seconds)
    engine = Engine(data, folder, embedder=embedder, backend=backend, progress=False,  # type: ignore[arg-type]
                    log=lambda m: None)  # fmt: skip
    return engine, seconds, time.perf_counter() - t0


def child_build(size: int, kind: str, folder: Path, progress: Progress) -> dict[str, Any]:
    """Engine(...) on an empty folder with the fast embedder."""
    embedder = FastEmbedder()
    progress.note(phase="build")
    engine, seconds, build = timed_engine(size, kind, folder, embedder)
    assert engine.report.saved, "the backend could not save"
    return {"passages": len(engine.passages), "windows": len(engine.ranker.windows), "build_s": build,
            "save_s": seconds.get("save", 0.0), "fast_embed_s": embedder.seconds, **used()}  # fmt: skip


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
    """Engine(...) on the stored index, then the questions through ask and the dense floor."""
    embedder = FastEmbedder()
    progress.note(phase="open")
    engine, seconds, engine_s = timed_engine(size, kind, folder, embedder)
    if engine.report.embedded_windows:
        raise SystemExit(f"the stored index was not used: {engine.report.embedded_windows} windows embedded")
    after_open = proc_status()
    progress.note(phase="queries")
    asked = questions()
    vectors = embedder.encode(asked)
    for q, v in zip(asked[:3], vectors[:3], strict=True):  # warm-up
        engine.ask(q)
        engine.index.search(v.reshape(1, -1), DENSE_K)
    ask, dense, ask_cpu = [], [], []  # CPU seconds of all threads: what wall time is when the cores are free
    for q in asked:
        t, c = time.perf_counter(), time.process_time()
        engine.ask(q)
        ask.append(time.perf_counter() - t)
        ask_cpu.append(time.process_time() - c)
    for v in vectors:
        t = time.perf_counter()
        engine.index.search(v.reshape(1, -1), DENSE_K)
        dense.append(time.perf_counter() - t)
    return {"open_s": seconds.get("load", 0.0), "open_cpu_s": seconds.get("load_cpu", 0.0),
            "engine_s": engine_s, "ask_s": quantiles(ask), "ask_cpu_s": quantiles(ask_cpu),
            "dense_s": quantiles(dense), "after_open": after_open, **used()}  # fmt: skip


def child_encode(progress: Progress) -> dict[str, Any]:
    """The real model on the 1x interview's windows: encode rate and query encode."""
    from embeddings.model import Embedder
    from qa.engine import load_transcripts
    from qa.retrieve import window_text, windows

    _, _, transcripts, _ = load_transcripts(corpus(1), log=lambda m: None)
    passages = [p for t in transcripts.values() for p in t.passages]
    texts = [window_text(passages, w) for w in windows(passages)]
    model = Embedder()
    model.encode_tokens(texts[:16])  # loads the model
    t0 = time.perf_counter()
    model.encode_tokens(texts)
    encode_s = time.perf_counter() - t0
    query = []
    for q in questions():
        t0 = time.perf_counter()
        model.encode_tokens([q])
        query.append(time.perf_counter() - t0)
    return {"windows": len(texts), "encode_per_s": len(texts) / encode_s, "query_encode_s": quantiles(query),
            **used()}  # fmt: skip


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
    """One child to its end, or killed past `limit_s` seconds or `cap_bytes` of anonymous RSS (its
    own memory: the mapped index files it reads are page cache, evictable): its result, or
    `status` saying why not with its last progress line and the largest RSS seen."""
    logs = WORK / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    result, progress = logs / f"{tag}.json", logs / f"{tag}.progress"
    result.unlink(missing_ok=True)
    progress.unlink(missing_ok=True)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "GRADIO_ANALYTICS_ENABLED": "False",
           "TOKENIZERS_PARALLELISM": "false"}  # fmt: skip
    command = [sys.executable, str(Path(__file__).resolve()), "--child", kind, "--result", str(result)]
    command += extra
    t0, peak, own, status = time.perf_counter(), 0, 0, "ok"
    with open(logs / f"{tag}.log", "wb") as log:
        proc = subprocess.Popen(command, cwd=PROJECT, env=env, stdout=log, stderr=subprocess.STDOUT)
        while proc.poll() is None:
            now = proc_status(proc.pid)
            peak, own = max(peak, now["VmRSS"]), max(own, now["RssAnon"])
            if time.perf_counter() - t0 > limit_s or own > cap_bytes:
                status = "timed out" if own <= cap_bytes else "over the RSS cap"
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
    out.update(status=status, wall_s=wall, max_rss_seen=peak, max_anon_seen=own)
    out["last_progress"] = json.loads(lines[-1]) if lines else None
    return out


def run_pair(size: int, kind: str, args: argparse.Namespace, cap: int) -> dict[str, Any]:
    """Build (or, with --serve-only, take the build kept by an earlier --keep run), then serve."""
    folder = WORK / f"{size}x-{kind}"
    built = WORK / "logs" / f"{size}x-{kind}-build.result.json"
    extra = ["--size", str(size), "--backend", kind, "--dir", str(folder)]
    if args.serve_only and built.exists() and folder.exists():
        build = json.loads(built.read_text(encoding="utf-8"))
    else:
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        say(f"[{size}x {kind}] build…")
        build = run_child("build", f"{size}x-{kind}-build", extra, args.build_timeout, cap)
        build["disk_bytes"] = disk_bytes(folder)
        built.write_text(json.dumps(build, indent=1), encoding="utf-8")
    say(f"[{size}x {kind}] build {build['status']}: {build.get('build_s', build['wall_s']):.1f} s, "
        f"disk {build['disk_bytes'] / MiB:.0f} MiB")  # fmt: skip
    if build["status"] == "ok" or (args.serve_only and folder.exists()):
        say(f"[{size}x {kind}] serve…")
        serve = run_child("serve", f"{size}x-{kind}-serve", extra, args.serve_timeout, cap)
        say(f"[{size}x {kind}] serve {serve['status']}: open {serve.get('open_s', 0):.2f} s, "
            f"engine {serve.get('engine_s', serve['wall_s']):.1f} s")  # fmt: skip
    else:
        serve = {"status": "not run: the build did not finish"}
    if not args.keep:
        shutil.rmtree(folder, ignore_errors=True)
    return {"size": size, "backend": kind, "build": build, "serve": serve}


def table(rows: list[dict[str, Any]]) -> str:
    """The Markdown table, one row per size and backend."""
    head = ["size", "backend", "windows", "build s", "open s (CPU s)", "engine open s",
            "ask p50 / p95 ms (CPU)", "dense floor p50 / p95 ms", "serving RSS anon / total MiB",
            "build peak MiB", "disk MiB"]  # fmt: skip
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]

    def num(x: float) -> str:  # three significant figures or so
        return f"{x:,.0f}" if x >= 100 else f"{x:.1f}" if x >= 10 else f"{x:.2f}"

    def ms(s: dict[str, Any], key: str) -> str:
        return f"{num(s[key]['p50'] * 1000)} / {num(s[key]['p95'] * 1000)}"

    for r in rows:
        b, s = r["build"], r["serve"]
        windows = f"{b['windows']:,}" if "windows" in b else "-"
        built = num(b["build_s"]) if b["status"] == "ok" else f"{b['status']} after {b['wall_s']:.0f} s"
        if s["status"] == "ok":
            served = [f"{num(s['open_s'])} ({num(s['open_cpu_s'])} CPU)", num(s["engine_s"]),
                      f"{ms(s, 'ask_s')} ({ms(s, 'ask_cpu_s')} CPU)", ms(s, "dense_s"),
                      f"{s['RssAnon'] / MiB:,.0f} / {s['VmRSS'] / MiB:,.0f}"]  # fmt: skip
        else:
            served = [
                s["status"] + (f" after {s['wall_s']:.0f} s" if "wall_s" in s else ""),
                "-",
                "-",
                "-",
                "-",
            ]
        peak = f"{b['VmHWM'] / MiB:,.0f}" if "VmHWM" in b else f"≥{b.get('max_rss_seen', 0) / MiB:,.0f}"
        cells = [f"{r['size']}x", r["backend"], windows, built, *served, peak, num(b["disk_bytes"] / MiB)]
        out.append("| " + " | ".join(cells) + " |")
    return "\n".join(out)


def notes(encode: Figures, before: Figures, after: Figures, wall: float) -> str:
    """What the table leaves out: the real model's figures, the machine's load."""
    lines = ["", "Builds and queries embed with a fast stand-in (the model's word pieces, 384 dimensions): "
             "latencies leave out the model's query encoding, RSS leaves out the model."]  # fmt: skip
    if encode.get("status") == "ok":
        q = encode["query_encode_s"]
        lines.append(f"Real model (all-MiniLM-L6-v2) on the 1x interview's {encode['windows']} windows: "
                     f"{encode['encode_per_s']:.0f} windows/s; query encode p50 {q['p50'] * 1000:.1f} ms, "
                     f"p95 {q['p95'] * 1000:.1f} ms.")  # fmt: skip
    changed = [name for name in CODE if before["code"][name] != after["code"][name]]
    if changed:
        lines.append(f"WARNING: {', '.join(changed)} changed during the run: rows may measure other code.")
    lines.append(f"Load average (1, 5, 15 min) at start {before['loadavg']}, at end {after['loadavg']}; "
                 f"{before['cpus']} CPUs; {wall / 60:.1f} min in all.")  # fmt: skip
    return "\n".join(lines)


CODE = ("embeddings/index.py", "embeddings/edge.py", "qa/engine.py", "qa/retrieve.py", "qa/transcript.py")


def code() -> dict[str, str]:
    """sha256 of the code measured, to tell whether it changed while the run went on."""
    return {name: hashlib.sha256((PROJECT / name).read_bytes()).hexdigest()[:16] for name in CODE}


def machine() -> dict[str, Any]:
    uptime = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    meminfo = Path("/proc/meminfo").read_text().splitlines()
    memory = {k: v.strip() for k, _, v in (x.partition(":") for x in meminfo)}
    return {"uptime": uptime, "loadavg": [round(x, 2) for x in os.getloadavg()], "cpus": os.cpu_count(),
            "mem_available": memory.get("MemAvailable"), "python": platform.python_version(), "code": code(),
            "time": time.strftime("%Y-%m-%d %H:%M:%S")}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", default="1,1300,6100", help="corpus sizes, in multiples of the interview")
    p.add_argument("--backends", default="faiss,edge", help="faiss, edge or both")
    p.add_argument("--build-timeout", type=float, default=3600, help="seconds per build (%(default)s)")
    p.add_argument("--serve-timeout", type=float, default=1800, help="seconds per serve run (%(default)s)")
    p.add_argument("--max-rss-gib", type=float, default=None,
                   help="kill a child above this RSS (default: 75%% of MemAvailable, <= 20)")  # fmt: skip
    p.add_argument("--no-model", action="store_true", help="skip the real model's encode rate")
    p.add_argument("--keep", action="store_true", help="keep the index folders under bench/out/backends/")
    p.add_argument("--serve-only", action="store_true",
                   help="serve what an earlier --keep run built, without building it again")  # fmt: skip
    p.add_argument("--json", type=Path, default=OUT / "backends.json", help="results (default: %(default)s)")
    p.add_argument("--child", choices=["encode", "build", "serve"], help=argparse.SUPPRESS)
    p.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    p.add_argument("--size", type=int, help=argparse.SUPPRESS)
    p.add_argument("--backend", choices=["faiss", "edge"], help=argparse.SUPPRESS)
    p.add_argument("--dir", type=Path, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        return child(args)
    try:
        sizes = sorted({int(s) for s in args.sizes.split(",") if s.strip()})
    except ValueError:
        p.error("--sizes takes whole numbers separated by commas, e.g. 1,1300,6100")
    kinds = [b.strip() for b in args.backends.split(",") if b.strip()]
    if not sizes or min(sizes) < 1 or not kinds or set(kinds) - {"faiss", "edge"}:
        p.error("sizes must be at least 1; backends are faiss and edge")

    began, before = time.perf_counter(), machine()
    available = int(before["mem_available"].split()[0]) * 1024 if before["mem_available"] else 16 * 2**30
    cap = int(args.max_rss_gib * 2**30) if args.max_rss_gib else min(20 * 2**30, int(0.75 * available))
    say(f"{before['uptime']}; RSS cap {cap / 2**30:.1f} GiB; sizes {sizes}; backends {kinds}")
    for size in sizes:
        corpus(size)  # written once here, not by two children at once
    encode: Figures = {"status": "not run"}
    if not args.no_model:
        say("real model encode rate…")
        encode = run_child("encode", "encode", [], 600, cap)
    rows = []
    for size in sizes:
        for kind in kinds:
            rows.append(run_pair(size, kind, args, cap))
            say("\n" + table(rows))
    after, wall = machine(), time.perf_counter() - began
    text = table(rows) + "\n" + notes(encode, before, after, wall)
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
