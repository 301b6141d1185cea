"""BM25 in memory (qa.retrieve.Bm25, a scipy matrix) against BM25 stored in Qdrant as sparse vectors.

python bench/lexical.py [--parts equiv,stale,eval,scale] [--size 1300] [--cap 1200] [--json PATH]

The Qdrant side (`QdrantBm25`) indexes each window's context (`qa.retrieve._context`) as one point of
qdrant-client's embedded mode, with a sparse vector whose ids are 31-bit sha1 hashes of the stemmed
terms (`qa.retrieve.tokenize`) and whose values are BM25's tf part `tf*(k1+1)/(tf+k1*(1-b+b*len/avgdl))`,
avgdl taken over the documents as they are indexed. The collection's sparse vector has
`Modifier.IDF`, so Qdrant multiplies each query value by idf = ln(1 + (N-df+0.5)/(df+0.5)), N being the
live points that hold the vector (qdrant_client/local/local_collection.py `_rescore_idf`); the query
is the question's unique terms with value 1.0, so a score is sum(idf x tf part), as `Bm25.scores`.
A search returns the top `limit` matches (1000 by default, or all); the other rows score 0.

Parts, all in one run:
- equiv: on the interview and each friendsqa episode, the max abs difference between
  `Bm25.scores` and `QdrantBm25.scores` (limit: all) over every window and every question of the
  sets asked of that transcript; `:memory:` and `path=` collections compared the same way; hash
  collisions of the term ids.
- stale: files added to a built collection (`QdrantBm25.add`, as an incremental sync would) keep
  the tf parts of the files indexed before, computed with the old avgdl; scores against Bm25 rebuilt
  over all files, for the interview then the six episodes, and five episodes then the sixth.
- eval: every set of /work/shared/eval as `python -m qa eval` runs it (qa.evaluate.discover and
  evaluate, the default model, index folders under bench/out/lexical/index), once with the engine's
  ranker as built (BM25 in memory) and then with `engine.state.ranker.lexical` replaced by a
  QdrantBm25 (path mode, limit 1000; `:memory:`, limit 1000; path, limit 64 = CANDIDATES).
- scale: a synthetic transcript `bench.corpus.corpus(SIZE)` (~SIZE x the interview's 77 sentences),
  its windows' contexts indexed lexically only (no model), each side in a child process of its own:
  build time, `.scores(q)` p50/p95 over 50 questions of /work/shared/eval/*.jsonl, VmRSS before the
  build and VmHWM (peak RSS) at the end; Qdrant embedded with `path=` (sqlite: one commit per point)
  is built in upserts of BATCH points until done or `--cap` seconds, then its disk size and the time
  to open it again are measured; `:memory:` is built in full for the query figures and for the score
  check at scale against Bm25.
`uptime` is recorded at start and end (the machine may be shared). Tables go to stdout, figures to
bench/out/lexical.json.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

# Run as a script, bench/ comes first on sys.path and `bench` would be this file, not the package.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np

from bench.corpus import OUT, PROJECT, corpus
from bench.stats import percentile
from qa.retrieve import CANDIDATES, Bm25, _context, _top, tokenize, windows

EVAL = PROJECT.parent / "shared" / "eval"
WORK = OUT / "lexical"
VECTOR = "bm25"
BATCH = 256  # points per upsert, as embeddings/qdrant.py
LIMIT = 1000  # matches a search returns; the other rows score 0
N_QUESTIONS = 50
N_SLOW = 10  # questions timed where one search takes seconds


def term_id(term: str) -> int:
    """A stable 31-bit id for a stemmed term: the first 4 bytes of its sha1."""
    return int.from_bytes(hashlib.sha1(term.encode("utf-8")).digest()[:4], "big") & 0x7FFFFFFF


def collisions(terms: set[str]) -> list[list[str]]:
    """Groups of distinct terms that share an id."""
    by_id: dict[int, list[str]] = {}
    for t in sorted(terms):
        by_id.setdefault(term_id(t), []).append(t)
    return [g for g in by_id.values() if len(g) > 1]


def status(key: str) -> float:
    """A /proc/self/status figure (VmRSS, VmHWM) in MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


class QdrantBm25:
    """BM25 of Bm25, stored in an embedded Qdrant collection as sparse vectors with Modifier.IDF.

    `scores(text)` has Bm25's shape: one score per document row, 0 outside the top `limit`
    matches (`limit=None`: all matches). With `cap` seconds, indexing stops after the batch that
    passes it: `points` says how many documents were stored. `add` appends documents as an
    incremental sync would: the tf parts already stored keep the avgdl they were computed with."""

    def __init__(
        self,
        docs: Sequence[str],
        client: Any,
        collection: str = "lexical",
        k1: float = 1.2,
        b: float = 0.75,
        limit: int | None = LIMIT,
        cap: float | None = None,
    ) -> None:
        from qdrant_client import models

        self.client, self.collection, self.limit, self.k1, self.b = client, collection, limit, k1, b
        self.n, self.total, self.avgdl, self.points, self.vocabulary = 0, 0.0, 1.0, 0, set()
        self.progress: list[tuple[int, float]] = []  # (points stored, seconds since the first upsert)
        client.create_collection(
            collection,
            vectors_config={},
            sparse_vectors_config={VECTOR: models.SparseVectorParams(modifier=models.Modifier.IDF)},
        )
        self.add(docs, cap)

    def add(self, docs: Sequence[str], cap: float | None = None) -> None:
        """Store documents as rows n, n+1, ...; their tf parts use the avgdl of every row so far."""
        from qdrant_client import models

        t0 = time.perf_counter()
        counted = []
        for doc in docs:
            counts: dict[str, int] = {}
            for w in tokenize(doc):
                counts[w] = counts.get(w, 0) + 1
            counted.append(counts)
            self.vocabulary.update(counts)
        self.collisions = collisions(self.vocabulary)
        self.terms = len(self.vocabulary)
        lengths = np.array([sum(c.values()) for c in counted], dtype=np.float64)
        first_row, self.n, self.total = self.n, self.n + len(docs), self.total + float(lengths.sum())
        self.avgdl = self.total / self.n if self.total > 0 else 1.0
        k1, b = self.k1, self.b
        self.prepare_s = time.perf_counter() - t0
        start = time.perf_counter()
        for first in range(0, len(docs), BATCH):
            batch = []
            for i in range(first, min(first + BATCH, len(docs))):
                norm = k1 * (1 - b + b * lengths[i] / self.avgdl)
                pairs = sorted((term_id(w), tf * (k1 + 1) / (tf + norm)) for w, tf in counted[i].items())
                vector = models.SparseVector(indices=[j for j, _ in pairs], values=[v for _, v in pairs])
                batch.append(models.PointStruct(id=first_row + i, vector={VECTOR: vector}))
            self.client.upsert(self.collection, batch, wait=True)
            self.points += len(batch)
            elapsed = time.perf_counter() - start
            if not self.progress or elapsed - self.progress[-1][1] >= 30 or self.points == self.n:
                self.progress.append((self.points, elapsed))
            if cap is not None and elapsed > cap:
                self.progress.append((self.points, elapsed))
                break
        self.upsert_s = time.perf_counter() - start

    @classmethod
    def attach(
        cls, client: Any, n: int, collection: str = "lexical", limit: int | None = LIMIT
    ) -> QdrantBm25:
        """A scorer over a collection already built (as when the folder is opened again)."""
        side = cls.__new__(cls)
        side.client, side.collection, side.limit, side.n = client, collection, limit, n
        return side

    def query(self, text: str) -> Any:
        from qdrant_client import models

        ids = sorted({term_id(w) for w in tokenize(text)})
        return models.SparseVector(indices=ids, values=[1.0] * len(ids)) if ids else None

    def hits(self, text: str, limit: int | None) -> tuple[np.ndarray, np.ndarray]:
        """Rows and scores of the top `limit` matches (None: all), best first."""
        query = self.query(text)
        if query is None:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
        found = self.client.query_points(
            self.collection, query=query, using=VECTOR, limit=limit or max(self.n, 1), with_payload=False
        ).points
        return (np.array([p.id for p in found], dtype=np.int64),
                np.array([p.score for p in found], dtype=np.float32))  # fmt: skip

    def scores(self, text: str) -> np.ndarray:
        rows, values = self.hits(text, self.limit)
        out = np.zeros(self.n, dtype=np.float32)
        out[rows] = values
        return out


def qdrant_client(path: Path | None) -> Any:
    """Embedded Qdrant: in a folder, or `:memory:` when path is None."""
    import warnings

    from qdrant_client import QdrantClient

    warnings.filterwarnings("ignore", message="Local mode is not recommended")
    return QdrantClient(path=str(path)) if path is not None else QdrantClient(location=":memory:")


def disk_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in Path(path).rglob("*") if f.is_file())


def uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def read_questions(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def timing_questions(n: int = N_QUESTIONS) -> list[str]:
    """n questions spread evenly over /work/shared/eval/*.jsonl (in-scope and off-topic alike)."""
    pool = [r["question"] for p in sorted(EVAL.glob("*.jsonl")) for r in read_questions(p)]
    return [pool[int(i)] for i in np.linspace(0, len(pool) - 1, min(n, len(pool)))]


# --- equiv: the two sides' scores on small corpora --------------------------------------------


def transcripts() -> dict[str, tuple[Path, list[str]]]:
    """Each transcript of the shared sets with every question asked of it."""
    from qa import evaluate as ev

    out: dict[str, tuple[Path, list[str]]] = {}
    for s in ev.discover(EVAL, PROJECT / "data"):
        data = PROJECT / "data" / "interview.txt" if Path(s.data).is_dir() else Path(s.data)
        name = data.stem
        asked = [q["question"] for q in [*s.questions, *s.off_topic]]
        out[name] = (data, out.get(name, (data, []))[1] + asked)
    return out


def contexts_of(path: Path) -> list[str]:
    from qa.transcript import parse_file

    passages = list(parse_file(path).passages)
    return [_context(passages, w) for w in windows(passages)]


def equivalence() -> list[dict[str, Any]]:
    rows = []
    for name, (path, questions) in transcripts().items():
        docs = contexts_of(path)
        bm = Bm25(docs)
        folder = Path(tempfile.mkdtemp(prefix="equiv-", dir=WORK))
        try:
            on_disk = QdrantBm25(docs, qdrant_client(folder), limit=None)
            in_memory = QdrantBm25(docs, qdrant_client(None), limit=None)
            diff = rel = mem_vs_disk = 0.0
            support = 0
            for q in questions:
                a, b, c = bm.scores(q), on_disk.scores(q), in_memory.scores(q)
                diff = max(diff, float(np.abs(a - b).max()))
                rel = max(rel, float((np.abs(a - b) / np.maximum(np.abs(a), 1e-6)).max()))
                mem_vs_disk = max(mem_vs_disk, float(np.abs(b - c).max()))
                support += int(((a > 0) != (b > 0)).sum())
            on_disk.client.close()
        finally:
            shutil.rmtree(folder)
        rows.append({"transcript": name, "windows": len(docs), "questions": len(questions),
                     "terms": on_disk.terms, "collisions": on_disk.collisions, "max_abs_diff": diff,
                     "max_rel_diff": rel, "rows_matched_differently": support,
                     "memory_vs_path_max_abs_diff": mem_vs_disk})  # fmt: skip
    return rows


def staleness() -> list[dict[str, Any]]:
    """Files added to a built collection (`QdrantBm25.add`): the stored tf parts of the first
    files keep their avgdl, while Bm25 rebuilt over all files uses the new one. Scores of every
    question asked of these transcripts, against that Bm25."""
    named = transcripts()
    episodes = sorted(n for n in named if n != "interview")
    scenarios = {"interview, then the 6 friendsqa episodes": (["interview"], episodes),
                 "5 friendsqa episodes, then the 6th": (episodes[:-1], episodes[-1:])}  # fmt: skip
    rows = []
    for name, (first, then) in scenarios.items():
        before = [d for n in first for d in contexts_of(named[n][0])]
        after = [d for n in then for d in contexts_of(named[n][0])]
        side = QdrantBm25(before, qdrant_client(None), limit=None)
        avgdl = side.avgdl
        side.add(after)
        fresh = Bm25(before + after)
        questions = [q for n in first + then for q in named[n][1]]
        rel, top1, pool, swapped, old_rows = [], 0, 0, [], np.arange(len(before))
        for q in questions:
            a, b = fresh.scores(q), side.scores(q)
            hit = a[old_rows] > 0
            rel += list(np.abs(a[old_rows][hit] - b[old_rows][hit]) / a[old_rows][hit])
            top1 += a.argmax() != b.argmax() and not np.isclose(a.max(), a[b.argmax()], atol=1e-4)
            pool += set(candidates(a)) != set(candidates(b))
            swapped.append(len(set(candidates(a)) - set(candidates(b))))
        rows.append({"scenario": name, "windows_before": len(before), "windows_added": len(after),
                     "avgdl_before": avgdl, "avgdl_after": side.avgdl, "questions": len(questions),
                     "old_rows_rel_diff_median": float(np.median(rel)) if rel else 0.0,
                     "old_rows_rel_diff_max": float(np.max(rel)) if rel else 0.0,
                     "top1_changed": int(top1), "candidates_changed": int(pool),
                     "candidates_swapped_mean": float(np.mean(swapped))})  # fmt: skip
        side.client.close()
    return rows


# --- eval: the project's evaluation with each lexical side ------------------------------------


def evaluation(k: int = 3) -> dict[str, Any]:
    """Every shared set, qa with BM25 in memory and with QdrantBm25 variants, on one engine each."""
    from embeddings.model import Embedder
    from qa import evaluate as ev
    from qa.engine import Engine

    sets = ev.discover(EVAL, PROJECT / "data")
    embedder = Embedder(None)
    variants: dict[str, tuple[bool, int | None]] = {
        "memory": (False, None),
        "qdrant path, limit 1000": (True, LIMIT),
        "qdrant :memory:, limit 1000": (False, LIMIT),
        f"qdrant path, limit {CANDIDATES}": (True, CANDIDATES),
    }
    engines: dict[str, Any] = {}
    table: dict[str, list[Any]] = {v: [] for v in variants}
    baselines, groups, build_s = [], {}, {}
    for s in sets:
        key = str(Path(s.data).resolve())
        if key not in engines:
            slug = hashlib.sha256(key.encode()).hexdigest()[:12]
            t0 = time.perf_counter()
            engines[key] = Engine(s.data, WORK / "index" / "eval" / slug, progress=False,
                                  log=lambda m: None, embedder=embedder)  # fmt: skip
            build_s[s.name] = time.perf_counter() - t0
        engine = engines[key]
        ranker = engine.state.ranker
        in_memory = ranker.lexical
        docs = [_context(ranker.passages, w) for w in ranker.windows]
        folders = []
        for name, (on_disk, limit) in variants.items():
            if name == "memory":
                ranker.lexical = in_memory
            else:
                folder = Path(tempfile.mkdtemp(prefix="eval-", dir=WORK)) if on_disk else None
                folders += [folder] if folder else []
                ranker.lexical = QdrantBm25(docs, qdrant_client(folder), limit=limit)
            scores = ev.evaluate(engine, s.questions, s.off_topic, k)
            for x in scores:
                x.set = s.name
            qa = [x for x in scores if x.name.startswith("qa")]
            table[name] += qa
            groups.setdefault((ev.group(s.name), name), []).append(qa)
            if name == "memory":
                baselines += [x for x in scores if not x.name.startswith("qa")]
            if ranker.lexical is not in_memory:
                ranker.lexical.client.close()
        ranker.lexical = in_memory
        for folder in folders:
            shutil.rmtree(folder)
    for (g, name), parts in groups.items():
        if len(parts) > 1:
            table[name] += ev.pooled(parts, f"{g} (all {len(parts)})")
    return {"model": embedder.name, "k": k, "build_s": build_s,
            "variants": {name: [asdict(x) for x in rows] for name, rows in table.items()},
            "baselines": [asdict(x) for x in baselines]}  # fmt: skip


# --- scale: each side built in a child process of its own ------------------------------------


def scale_docs(size: int) -> tuple[list[str], int]:
    """The contexts of the windows of corpus(size), and its passage count."""
    from qa.transcript import parse_file

    passages = list(parse_file(corpus(size)).passages)
    return [_context(passages, w) for w in windows(passages)], len(passages)


def time_queries(
    score: Callable[[str], Any], questions: Sequence[str], keep: Callable[[Any], Any] = lambda _: None
) -> tuple[dict[str, float], list[Any]]:
    """p50/p95 of `score(q)` over the questions (after one warm-up call), and `keep` of what it
    returned (computed outside the timing)."""
    score(questions[0])
    ms, results = [], []
    for q in questions:
        t0 = time.perf_counter()
        result = score(q)
        ms.append((time.perf_counter() - t0) * 1000)
        results.append(keep(result))
    return {"p50_ms": statistics.median(ms), "p95_ms": percentile(ms, 95), "n": len(ms)}, results


def candidates(x: np.ndarray) -> dict[int, float]:
    """The rows the ranker takes as lexical candidates (Ranker.search), with their scores."""
    return {int(i): float(x[i]) for i in _top(x, CANDIDATES) if x[i] > 0}


def child(kind: str, size: int, cap: float, folder: Path | None) -> dict[str, Any]:
    """One side at scale, in this process only: what the parent runs as `--child KIND`."""
    t0 = time.perf_counter()
    docs, n_passages = scale_docs(size)
    out: dict[str, Any] = {"side": kind, "passages": n_passages, "windows": len(docs),
                           "parse_s": time.perf_counter() - t0,
                           "rss_before_build_mb": status("VmRSS")}  # fmt: skip
    questions = timing_questions()
    t0 = time.perf_counter()
    if kind == "memory":
        bm = Bm25(docs)
        out["build_s"] = time.perf_counter() - t0
        m = bm.matrix
        out["matrix_mb"] = (m.data.nbytes + m.indices.nbytes + m.indptr.nbytes) / 2**20
        out["terms"] = len(bm.vocab)
        out["rss_after_build_mb"] = status("VmRSS")
        out["query"], _ = time_queries(bm.scores, questions)
    elif kind == "qdrant-reopen":
        client = qdrant_client(folder)
        out["open_s"] = time.perf_counter() - t0
        out["points"] = client.count("lexical").count
        out["rss_after_build_mb"] = status("VmRSS")
        side = QdrantBm25.attach(client, len(docs))
        out["query"], _ = time_queries(side.scores, questions[:N_SLOW])
        client.close()
    else:
        client = qdrant_client(folder if kind == "qdrant-path" else None)
        side = QdrantBm25(docs, client, cap=cap if kind == "qdrant-path" else None)
        out.update(build_s=time.perf_counter() - t0, prepare_s=side.prepare_s, upsert_s=side.upsert_s,
                   points=side.points, complete=side.points == len(docs), progress=side.progress,
                   points_per_s=side.points / side.upsert_s, terms=side.terms, collisions=side.collisions,
                   rss_after_build_mb=status("VmRSS"))  # fmt: skip
        if kind == "qdrant-memory":
            out["query"], cut = time_queries(side.scores, questions, candidates)
            out["query_all_matches"], every = time_queries(
                lambda q: side.hits(q, None), questions[:N_SLOW], lambda x: x
            )
        elif side.points == len(docs):
            out["query"], _ = time_queries(side.scores, questions[:N_SLOW])
        if kind == "qdrant-path":
            client.close()
            out["disk_mb"] = disk_bytes(folder) / 2**20
    out["vmhwm_mb"] = status("VmHWM")
    if kind == "qdrant-memory":  # after the peak is read: the scores at scale against Bm25
        out["check"] = scale_check(Bm25(docs), questions, cut, every)
    return out


def scale_check(
    bm: Bm25,
    questions: Sequence[str],
    cut: list[dict[int, float]],
    every: list[tuple[np.ndarray, np.ndarray]],
) -> dict[str, Any]:
    """At scale: the score difference over all matches (of the questions searched for all of
    them), how many matching rows `limit` leaves out, and whether the ranker's lexical candidates
    (top CANDIDATES) stay the same, or differ only among rows whose scores tie within 1e-4."""
    diff, matched, same, tied = 0.0, [], 0, 0
    for i, q in enumerate(questions):
        full = bm.scores(q)
        if i < len(every):
            mine = np.zeros(len(full), dtype=np.float32)
            mine[every[i][0]] = every[i][1]
            diff = max(diff, float(np.abs(full - mine).max()))
        matched.append(int((full > 0).sum()))
        a, b = candidates(full), cut[i]
        same += set(a) == set(b)
        tied += set(a) != set(b) and np.allclose(sorted(a.values()), sorted(b.values()), atol=1e-4)
    over = [m for m in matched if m > LIMIT]
    return {"max_abs_diff_all_matches": diff, "questions_all_matches": len(every),
            "matching_rows_median": statistics.median(matched), "matching_rows_max": max(matched),
            "questions_over_limit": len(over),
            "share_of_matches_zeroed_median": statistics.median([1 - LIMIT / m for m in over] or [0.0]),
            "same_top_candidates": same, "same_up_to_ties": tied, "questions": len(questions)}  # fmt: skip


def run_child(kind: str, size: int, cap: float, folder: Path | None) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--child", kind, "--size", str(size), "--cap", str(cap)]
    cmd += ["--folder", str(folder)] if folder else []
    t0 = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=PROJECT)
    if done.returncode != 0:
        raise RuntimeError(f"{kind} child failed:\n{done.stderr[-3000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    result["wall_s"] = time.perf_counter() - t0
    return result


def scale(size: int, cap: float) -> dict[str, Any]:
    folder = Path(tempfile.mkdtemp(prefix="scale-", dir=WORK))
    try:
        sides = {"memory": run_child("memory", size, cap, None),
                 "qdrant-memory": run_child("qdrant-memory", size, cap, None),
                 "qdrant-path": run_child("qdrant-path", size, cap, folder / "qdrant")}  # fmt: skip
        sides["qdrant-reopen"] = run_child("qdrant-reopen", size, cap, folder / "qdrant")
    finally:
        shutil.rmtree(folder)
    return {"size": size, "cap_s": cap, "sides": sides}


# --- report ------------------------------------------------------------------------------------


def markdown(rows: list[list[str]], header: list[str]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows])


def f(x: float | None, spec: str = ".2f") -> str:
    return "-" if x is None else format(x, spec)


def latency(x: dict[str, Any], key: str = "query") -> str:
    return f"{x[key]['p50_ms']:.1f} / {x[key]['p95_ms']:.1f} (n={x[key]['n']})" if key in x else "-"


def report(result: dict[str, Any]) -> str:
    out = [f"uptime at start: {result['uptime_start']}", f"uptime at end: {result['uptime_end']}", ""]
    if "equiv" in result:
        out += ["## Scores: Bm25 (memory) vs QdrantBm25 (limit: all)", markdown(
            [[r["transcript"], str(r["windows"]), str(r["questions"]), str(r["terms"]),
              str(len(r["collisions"])), f"{r['max_abs_diff']:.2e}", f"{r['max_rel_diff']:.2e}",
              str(r["rows_matched_differently"]),
              f"{r['memory_vs_path_max_abs_diff']:.1e}"] for r in result["equiv"]],
            ["transcript", "windows", "questions", "terms", "hash collisions", "max abs diff", "max rel diff",
             "rows matched by one side only", ":memory: vs path max abs diff"]), ""]  # fmt: skip
    if "stale" in result:
        out += ["## Files added to a built collection: stale tf parts vs Bm25 rebuilt (limit: all)", markdown(
            [[r["scenario"], f"{r['windows_before']} + {r['windows_added']}",
              f"{r['avgdl_before']:.1f} -> {r['avgdl_after']:.1f}", str(r["questions"]),
              f"{r['old_rows_rel_diff_median']:.1%} / {r['old_rows_rel_diff_max']:.1%}",
              f"{r['top1_changed']}", f"{r['candidates_changed']} ({r['candidates_swapped_mean']:.1f} rows)"]
             for r in result["stale"]],
            ["scenario", "windows", "avgdl", "questions", "old rows' score error median / max",
             "lexical top-1 changed", f"top-{CANDIDATES} candidates changed (mean rows swapped)"]),
            ""]  # fmt: skip
    if "eval" in result:
        ev = result["eval"]
        names = list(ev["variants"])
        header = ["set", "n", "retriever"] + [f"hit@1/hit@3 {v}" for v in names]
        header += ["answered (all)", "refused (all)", "p50 ms memory / qdrant path 1000"]
        rows = []
        for i, base in enumerate(ev["variants"]["memory"]):
            vs = [ev["variants"][v][i] for v in names]
            answered = {f(v["answered"]) for v in vs}
            refused = {f(v["refused"]) for v in vs}
            rows.append([base["set"], str(base["n"]), base["name"]]
                        + [f"{v['hit1']:.2f} / {v['hit3']:.2f}" for v in vs]
                        + [" / ".join(sorted(answered)), " / ".join(sorted(refused)),
                           f"{vs[0]['p50_ms']:.1f} / {vs[1]['p50_ms']:.1f}"])  # fmt: skip
        out += [f"## Retrieval, model {ev['model']}, k={ev['k']} "
                "(one engine per transcript, lexical side swapped)", markdown(rows, header), ""]  # fmt: skip
    if "scale" in result:
        sc, s = result["scale"], result["scale"]["sides"]
        mem, qm, qp, qr = s["memory"], s["qdrant-memory"], s["qdrant-path"], s["qdrant-reopen"]

        def row(name: str, x: dict[str, Any]) -> list[str]:
            points = str(x.get("points", x["windows"])) + ("" if x.get("complete", True) else " (capped)")
            build = f"open {x['open_s']:.1f}" if "open_s" in x else f"{x['build_s']:.1f}"
            build += f" ({x['points_per_s']:.0f} pts/s)" if "points_per_s" in x else ""
            disk = f"{x['disk_mb']:.0f}" if "disk_mb" in x else "-"
            memory = [f"{x['rss_before_build_mb']:.0f}", f"{x['vmhwm_mb']:.0f}"]
            return [name, points, build, latency(x), latency(x, "query_all_matches"), *memory, disk,
                    f"{x['wall_s']:.0f}"]  # fmt: skip

        rows = [row("BM25 in memory (scipy)", mem), row("Qdrant :memory:", qm),
                row("Qdrant path (sqlite)", qp), row("Qdrant path, reopened", qr)]  # fmt: skip
        out += [f"## Scale: corpus({sc['size']}), {mem['passages']} passages, {mem['windows']} windows "
                f"(lexical only, each side in its own process)",
                markdown(rows, ["side", "points", "build s", f"scores() p50/p95 ms, limit {LIMIT}",
                                "p50/p95 ms, all matches", "RSS before build MB", "peak RSS MB", "disk MB",
                                "child wall s"])]  # fmt: skip
        c = qm.get("check", {})
        if c:
            out += ["", "At scale: max abs diff over all matches "
                    f"{c['max_abs_diff_all_matches']:.2e} ({c['questions_all_matches']} questions); "
                    "matching rows per question median "
                    f"{c['matching_rows_median']:.0f}, max {c['matching_rows_max']}; "
                    f"{c['questions_over_limit']}/{c['questions']} questions match more than {LIMIT} rows "
                    f"(median share zeroed {c['share_of_matches_zeroed_median']:.0%}); top-{CANDIDATES} "
                    f"lexical candidates identical for {c['same_top_candidates']}/{c['questions']} "
                    f"(+{c['same_up_to_ties']} equal up to tied scores); "
                    f"hash collisions {len(qm['collisions'])} among {qm['terms']} terms."]  # fmt: skip
    return "\n".join(out)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--parts", default="equiv,stale,eval,scale")
    p.add_argument("--size", type=int, default=1300, help="corpus(SIZE) for the scale part")
    p.add_argument("--cap", type=float, default=1200, help="seconds of upserts to the Qdrant folder")
    p.add_argument("--json", type=Path, default=OUT / "lexical.json")
    p.add_argument("--child", help=argparse.SUPPRESS)
    p.add_argument("--folder", type=Path, help=argparse.SUPPRESS)
    args = p.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if args.child:
        print(json.dumps(child(args.child, args.size, args.cap, args.folder)))
        return 0
    WORK.mkdir(parents=True, exist_ok=True)
    parts = args.parts.split(",")
    result: dict[str, Any] = {"uptime_start": uptime(), "cpus": os.cpu_count()}
    t0 = time.perf_counter()
    steps = (("equiv", equivalence), ("stale", staleness), ("eval", evaluation),
             ("scale", lambda: scale(args.size, args.cap)))  # fmt: skip
    for part, run in steps:
        if part in parts:
            t = time.perf_counter()
            result[part] = run()
            result[f"{part}_wall_s"] = time.perf_counter() - t
            print(f"{part}: {result[f'{part}_wall_s']:.0f} s", file=sys.stderr, flush=True)
    result["wall_s"] = time.perf_counter() - t0
    result["uptime_end"] = uptime()
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=1), encoding="utf-8")
    print(report(result))
    print(f"\nwritten to {args.json}; {result['wall_s']:.0f} s in all")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
