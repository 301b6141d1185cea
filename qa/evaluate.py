"""Retrieval quality on a question set with gold quotes, for the project and two baselines.

A quote is a hit when it covers at least half of a gold sentence (a transcript sentence that
holds one of the question's gold strings).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from qa.answer import Answer, Quote, build
from qa.engine import Engine
from qa.retrieve import Hit


@dataclass
class Scores:
    name: str
    hit1: float
    hit3: float
    mrr: float
    answered: float | None  # share of in-scope questions answered
    refused: float | None  # share of off-topic questions refused
    quote_chars: float  # mean length of the top quote
    p50_ms: float
    n: int = 0  # in-scope questions
    set: str = ""

    def row(self) -> list[str]:
        pct = lambda x: "-" if x is None else f"{x:.2f}"  # noqa: E731
        return [self.set, str(self.n), self.name, pct(self.hit1), pct(self.hit3), pct(self.mrr),
                pct(self.answered), pct(self.refused), f"{self.quote_chars:.0f}",
                f"{self.p50_ms:.1f}"]  # fmt: skip


HEADER = ["set", "n", "retriever", "hit@1", "hit@3", "MRR", "answered", "refused", "quote len", "p50 ms"]


def read_jsonl(path: Path) -> list[dict]:
    rows = []
    for n, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except ValueError as e:
                raise ValueError(f"{path}:{n}: not JSON ({e})") from None
    return rows


def gold_spans(engine: Engine, golds: Sequence[str]) -> list[tuple[str, int, int]]:
    """(source, start, end) of every sentence that holds a gold string."""
    spans = []
    for gold in golds:
        for p in engine.passages:
            text = engine.texts[p.source]
            at = text.find(gold)
            while at >= 0:
                if p.start < at + len(gold) and p.end > at:
                    spans.append((p.source, p.start, p.end))
                at = text.find(gold, at + 1)
    return sorted(set(spans))


def is_hit(quote: Quote, gold: Sequence[tuple[str, int, int]]) -> bool:
    for source, start, end in gold:
        if source == quote.source:
            overlap = min(end, quote.end) - max(start, quote.start)
            if overlap >= 0.5 * (end - start):
                return True
    return False


def first_hit(answer: Answer, gold: Sequence[tuple[str, int, int]]) -> int | None:
    for rank, quote in enumerate(answer.quotes):
        if is_hit(quote, gold):
            return rank
    return None


def _baseline(engine: Engine, name: str) -> Callable[[str, int], Answer]:
    """A one-signal ranking over single sentences (BM25, or the cosine to the sentence alone,
    embedded plainly), quoted one sentence at a time, never refusing."""
    if name == "dense":
        sentences = engine.embedder.encode([p.text for p in engine.passages])

    def ask(question: str, k: int) -> Answer:
        if name == "bm25":
            scores = engine.ranker.sentence.scores(question)
        else:
            scores = sentences @ engine.embedder.encode([question])[0]
        order = np.argsort(-scores, kind="stable")[:k]
        hits = [Hit(int(i), int(i), int(i), float(scores[i])) for i in order]
        return build(question, hits, engine.passages, engine.texts, engine.titles, k, True, 0.0)

    return ask


def evaluate(engine: Engine, questions: list[dict], off_topic: list[dict], k: int = 3) -> list[Scores]:
    """Scores of the project and the baselines; with follow-up questions (a "history" key),
    also of the project ignoring the history, to show what the conversation adds."""
    bm25, dense = _baseline(engine, "bm25"), _baseline(engine, "dense")
    retrievers: dict[str, Callable[[dict, int], Answer]] = {
        "qa": lambda q, k: engine.ask(q["question"], k, history=q.get("history", ())),
        "bm25": lambda q, k: bm25(q["question"], k),
        "dense": lambda q, k: dense(q["question"], k),
    }
    if any(q.get("history") for q in questions):
        retrievers["qa, history ignored"] = lambda q, k: engine.ask(q["question"], k)
    golds = [gold_spans(engine, q.get("gold", [])) for q in questions]
    results = []
    for name, ask in retrievers.items():
        ranks, lengths, times, answered = [], [], [], []
        for q, gold in zip(questions, golds, strict=True):
            t0 = time.perf_counter()
            a = ask(q, max(k, 10))
            times.append((time.perf_counter() - t0) * 1000)
            ranks.append(first_hit(a, gold))
            answered.append(a.answered)
            if a.quotes:
                lengths.append(len(a.quotes[0].text))
        refused = [not ask(q, k).answered for q in off_topic if not q.get("hard")]
        n = max(len(questions), 1)
        is_qa = name.startswith("qa")
        results.append(
            Scores(
                name,
                sum(r is not None and r < 1 for r in ranks) / n,
                sum(r is not None and r < 3 for r in ranks) / n,
                sum(1 / (r + 1) for r in ranks if r is not None) / n,
                sum(answered) / n if is_qa else None,
                (sum(refused) / len(refused) if refused else None) if is_qa else None,
                float(np.mean(lengths)) if lengths else 0.0,
                float(np.median(times)) if times else 0.0,
                len(questions),
            )
        )
    return results


def table(rows: list[list[str]], header: list[str]) -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    fmt = lambda r: "  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()  # noqa: E731
    return "\n".join([fmt(header), fmt(["-" * w for w in widths]), *map(fmt, rows)])


def calibrate(sets: Sequence[tuple[Engine, list[dict], list[dict]]]) -> dict[str, float]:
    """Pick the coverage weight and threshold that best split in-scope from off-topic questions,
    over every set at once, each set over its own transcript.

    Accuracy on the in-scope side is the mean of each set's answered share, so a large set does
    not outvote a small one. Among weights that separate best, prefer the widest gap; the
    threshold sits in the gap, nearer the off-topic side, since wrongly refusing a real question
    costs more than showing a low-scored quote.
    """
    feats_in = [[_features(e, q["question"]) for q in qs] for e, qs, _ in sets if qs]
    feats_out = [_features(e, q["question"]) for e, _, oos in sets for q in oos if not q.get("hard")]
    if not feats_in or not feats_out:
        raise ValueError("calibration needs in-scope questions and plainly off-topic ones")
    best = None
    for alpha in np.round(np.arange(0.0, 1.01, 0.05), 2):
        s_in = [[d + alpha * c for d, c in f] for f in feats_in]
        s_out = sorted(d + alpha * c for d, c in feats_out)
        for t in sorted({x for f in s_in for x in f} | set(s_out)):
            answered = np.mean([np.mean([s >= t for s in f]) for f in s_in])
            acc = (answered + np.mean([s < t for s in s_out])) / 2
            below = [s for s in s_out if s < t]
            lo = max(below) if below else t
            key = (round(float(acc), 4), t - lo)
            if best is None or key > best[0]:
                best = (key, float(alpha), lo + 0.35 * (t - lo))
    (acc, _gap), alpha, threshold = best
    return {"alpha": alpha, "threshold": round(threshold, 4), "balanced_accuracy": acc,
            "in_scope": sum(len(f) for f in feats_in), "off_topic": len(feats_out)}  # fmt: skip


def _features(engine: Engine, question: str) -> tuple[float, float]:
    """(best window cosine, word coverage): what the refusal threshold is fitted on."""
    top = engine.ranker.dense(engine.query(question).vector, None, 1)
    return (top[0][1] if top else 0.0), engine.ranker.coverage(question)


# --- suites: every question set of a folder, each over its own transcript ---------------------


@dataclass
class EvalSet:
    """Questions with their off-topic counterparts, asked of one transcript (or folder)."""

    name: str
    data: Path
    questions: list[dict]
    off_topic: list[dict]


def discover(folder: Path, default_data: Path) -> list[EvalSet]:
    """The sets of an eval folder. `X.jsonl` is asked of `default_data`, its off-topic questions in
    `X_out_of_scope.jsonl` (or `out_of_scope.jsonl` beside `questions.jsonl`); `X.jsonl` beside a
    transcript `X.txt` is asked of that transcript alone (as in `friendsqa/`)."""
    sets = []
    for path in sorted(Path(folder).rglob("*.jsonl")):
        if "out_of_scope" in path.stem:
            continue
        transcript = next((t for t in path.parent.glob(path.stem + ".*") if t.suffix != ".jsonl"), None)
        oos = path.with_name(f"{path.stem}_out_of_scope.jsonl")
        if not oos.exists() and path.stem == "questions":
            oos = path.with_name("out_of_scope.jsonl")
        rel = path.relative_to(folder).with_suffix("").as_posix()
        sets.append(EvalSet(rel, transcript or default_data, read_jsonl(path),
                            read_jsonl(oos) if oos.exists() else []))  # fmt: skip
    return sets


def group(name: str) -> str:
    """Sets in a subfolder are reported together: `friendsqa/s01_e23` belongs to `friendsqa`."""
    return name.split("/")[0]


def pooled(parts: Sequence[list[Scores]], name: str) -> list[Scores]:
    """Scores of several sets as one, weighted by their question counts; the refusal rate is left
    out, as the sets' off-topic questions differ."""
    out = []
    for rows in zip(*parts, strict=True):
        weights = np.array([r.n for r in rows], dtype=float)

        def mean(field: str, rows: tuple[Scores, ...] = rows, w: np.ndarray = weights) -> float | None:
            values = [getattr(r, field) for r in rows]
            return None if None in values else float(np.dot(values, w) / max(w.sum(), 1))

        out.append(Scores(rows[0].name, mean("hit1"), mean("hit3"), mean("mrr"), mean("answered"),
                          None, mean("quote_chars"), float(np.median([r.p50_ms for r in rows])),
                          int(weights.sum()), name))  # fmt: skip
    return out
