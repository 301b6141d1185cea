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
from qa.retrieve import Hit, dense_search


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

    def row(self) -> list[str]:
        pct = lambda x: "-" if x is None else f"{x:.2f}"  # noqa: E731
        return [self.name, pct(self.hit1), pct(self.hit3), pct(self.mrr), pct(self.answered),
                pct(self.refused), f"{self.quote_chars:.0f}", f"{self.p50_ms:.1f}"]  # fmt: skip


HEADER = ["retriever", "hit@1", "hit@3", "MRR", "answered", "refused", "quote len", "p50 ms"]


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
    """A one-signal ranking, quoted one sentence at a time, never refusing."""

    def ask(question: str, k: int) -> Answer:
        if name == "bm25":
            scores = engine.ranker.sentence.scores(question)
            order = np.argsort(-scores, kind="stable")[:k]
            hits = [Hit(int(i), float(scores[i])) for i in order]
        else:
            vector = engine.embedder.encode([question])[0]
            hits = dense_search(engine.index, vector, k)
        quotes = build(question, hits, engine.passages, engine.texts, engine.titles, k, True, 0.0)
        single = [
            Quote(**{**q.__dict__, "start": q.highlight_start, "end": q.highlight_end,
                     "text": engine.texts[q.source][q.highlight_start : q.highlight_end]})
            for q in quotes.quotes
        ]  # fmt: skip
        return Answer(question, True, single)

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
        refused = [not ask(q, k).answered for q in off_topic]
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
            )
        )
    return results


def table(rows: list[list[str]], header: list[str]) -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    fmt = lambda r: "  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()  # noqa: E731
    return "\n".join([fmt(header), fmt(["-" * w for w in widths]), *map(fmt, rows)])


def calibrate(engine: Engine, questions: list[dict], off_topic: list[dict]) -> dict[str, float]:
    """Pick the coverage weight and threshold that best split in-scope from off-topic questions.

    Among weights that separate the sets best (balanced accuracy), prefer the widest gap; the
    threshold sits in the gap, nearer the off-topic side, since wrongly refusing a real question
    costs more than showing a low-scored quote.
    """
    plain = [q for q in off_topic if not q.get("hard")] or off_topic
    feats_in = [_features(engine, q["question"]) for q in questions]
    feats_out = [_features(engine, q["question"]) for q in plain]
    best = None
    for alpha in np.round(np.arange(0.0, 1.01, 0.05), 2):
        s_in = sorted(d + alpha * c for d, c in feats_in)
        s_out = sorted(d + alpha * c for d, c in feats_out)
        for t in sorted(set(s_in + s_out)):
            acc = (np.mean([s >= t for s in s_in]) + np.mean([s < t for s in s_out])) / 2
            below = [s for s in s_out if s < t]
            gap = t - (max(below) if below else t)
            key = (round(float(acc), 4), gap)
            if best is None or key > best[0]:
                lo = max(below) if below else t
                best = (key, float(alpha), lo + 0.35 * (t - lo))
    (acc, _gap), alpha, threshold = best
    return {"alpha": alpha, "threshold": round(threshold, 4), "balanced_accuracy": acc,
            "in_scope": len(feats_in), "off_topic": len(feats_out)}  # fmt: skip


def _features(engine: Engine, question: str) -> tuple[float, float]:
    vector = engine.embedder.encode([question])[0]
    top = dense_search(engine.index, vector, 1)
    return (top[0].score if top else 0.0), engine.ranker.coverage(question)
