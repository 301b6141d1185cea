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
from qa.retrieve import FEATURES, MAX_SENTENCES, Bm25, Evidence, Hit, Window, on_topic, verdict, windows


@dataclass
class Scores:
    name: str
    hit1: float | None
    hit3: float | None
    mrr: float | None
    answered: float | None  # share of in-scope questions answered (verdict "answer")
    refused: float | None  # share of plainly off-topic questions refused
    quote_chars: float  # mean length of the top quote
    p50_ms: float
    n: int = 0  # in-scope questions
    set: str = ""
    hit1_answered: float | None = None  # hit@1 among the questions answered
    near: float | None = None  # share of near misses (on the topic, not answered there) not answered
    conversation_hit3: float | None = None  # hit@3 asked in one conversation (3 earlier questions)
    highlight: float | None = None  # share of top-1 hits whose highlighted sentence overlaps the gold
    asker_first: float | None = None  # share of questions answered by the interviewee (in the gold)
    # whose top quote is the interviewer's

    def row(self) -> list[str]:
        pct = lambda x: "-" if x is None else f"{x:.2f}"  # noqa: E731
        return [self.set, str(self.n), self.name, pct(self.hit1), pct(self.hit3), pct(self.mrr),
                pct(self.answered), pct(self.hit1_answered), pct(self.refused), pct(self.near),
                pct(self.conversation_hit3), pct(self.highlight), pct(self.asker_first),
                f"{self.quote_chars:.0f}", f"{self.p50_ms:.1f}"]  # fmt: skip


HEADER = ["set", "n", "retriever", "hit@1", "hit@3", "MRR", "answered", "hit@1 answered", "refused",
          "near refused", "conv hit@3", "highlight", "asker 1st", "quote len", "p50 ms"]  # fmt: skip


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
    """A one-signal ranking, never refusing: over single sentences, BM25 ("bm25") or the cosine
    to the sentence embedded plainly ("dense"); or the cosine to every window of 1-3 sentences
    embedded plainly ("dense windows"), the unit qa quotes."""
    units = (
        windows(engine.passages)
        if name == "dense windows"
        else [Window(i, i) for i in range(len(engine.passages))]
    )
    if name == "bm25":
        sentences = Bm25([p.text for p in engine.passages])
    else:
        vectors = engine.embedder.encode(
            [" ".join(p.text for p in engine.passages[w.first : w.last + 1]) for w in units]
        )

    def ask(question: str, k: int) -> Answer:
        if name == "bm25":
            scores = sentences.scores(question)
        else:
            scores = vectors @ engine.embedder.encode([question])[0]
        order = np.argsort(-scores, kind="stable")[: max(k, 1) * MAX_SENTENCES * 2]
        hits = [Hit(units[i].first, units[i].last, units[i].first, float(scores[i])) for i in order]
        return build(question, hits, engine.passages, engine.texts, engine.titles, k, True, 0.0)

    return ask


def highlight_hit(quote: Quote, gold: Sequence[tuple[str, int, int]]) -> bool:
    """Whether the quote's highlighted sentence overlaps a gold sentence."""
    return any(src == quote.source and min(e, quote.highlight_end) > max(s, quote.highlight_start)
               for src, s, e in gold)  # fmt: skip


def _share(xs: Sequence[bool]) -> float | None:
    return sum(xs) / len(xs) if xs else None


def evaluate(engine: Engine, questions: list[dict], off_topic: list[dict], k: int = 3) -> list[Scores]:
    """Scores of the project and the baselines; with follow-up questions (a "history" key),
    also of the project ignoring the history, to show what the conversation adds.

    A question is asked alone, and, for qa, also in one conversation: after the three questions
    of the set before it (so a stand-alone question wrongly taken as a follow-up shows as a
    loss). Near misses are the off-topic questions marked "hard": on the topic, not answered."""
    if not questions:  # near misses alone: only whether they are answered
        asked = [engine.ask(q["question"], k) for q in off_topic]
        plain = [not a.answered for a, q in zip(asked, off_topic, strict=True) if not q.get("hard")]
        near = [not a.answered for a, q in zip(asked, off_topic, strict=True) if q.get("hard")]
        return [Scores("qa", None, None, None, None, _share(plain), 0.0, 0.0, 0, near=_share(near))]
    bm25, dense, spans = (_baseline(engine, x) for x in ("bm25", "dense", "dense windows"))
    retrievers: dict[str, Callable[[dict, int], Answer]] = {
        "qa": lambda q, k: engine.ask(q["question"], k, history=q.get("history", ())),
        "bm25": lambda q, k: bm25(q["question"], k),
        "dense": lambda q, k: dense(q["question"], k),
        "dense windows": lambda q, k: spans(q["question"], k),
    }
    followups = any(q.get("history") for q in questions)
    if followups:
        retrievers["qa, history ignored"] = lambda q, k: engine.ask(q["question"], k)
    golds = [gold_spans(engine, q.get("gold", [])) for q in questions]
    roles = {(p.source, p.start, p.end): p.role for p in engine.passages}
    by_interviewee = [bool(g) and all(roles.get(x) == "answer" for x in g) for g in golds]
    results = []
    for name, ask in retrievers.items():
        ranks, lengths, times, answered, marks, asker = [], [], [], [], [], []
        for q, gold, theirs in zip(questions, golds, by_interviewee, strict=True):
            t0 = time.perf_counter()
            a = ask(q, max(k, 10))
            times.append((time.perf_counter() - t0) * 1000)
            ranks.append(first_hit(a, gold))
            answered.append(a.answered)
            if a.quotes:
                lengths.append(len(a.quotes[0].text))
                if theirs:
                    asker.append(a.quotes[0].role == "question")
            if ranks[-1] == 0:
                marks.append(highlight_hit(a.quotes[0], gold))
        n = max(len(questions), 1)
        is_qa = name.startswith("qa")
        row = Scores(
            name,
            sum(r is not None and r < 1 for r in ranks) / n,
            sum(r is not None and r < 3 for r in ranks) / n,
            sum(1 / (r + 1) for r in ranks if r is not None) / n,
            _share(answered) if is_qa else None,
            None,
            float(np.mean(lengths)) if lengths else 0.0,
            float(np.median(times)) if times else 0.0,
            len(questions),
            highlight=_share(marks),
            asker_first=_share(asker),
        )
        if is_qa:
            row.hit1_answered = _share([r == 0 for r, a in zip(ranks, answered, strict=True) if a])
            row.refused = _share([not ask(q, k).answered for q in off_topic if not q.get("hard")])
            row.near = _share([not ask(q, k).answered for q in off_topic if q.get("hard")])
        if name == "qa" and questions and not followups:
            talk = [q["question"] for q in questions]
            in_talk = [first_hit(engine.ask(q, k, history=talk[max(0, i - 3) : i]), g)
                       for i, (q, g) in enumerate(zip(talk, golds, strict=True))]  # fmt: skip
            row.conversation_hit3 = _share([r is not None and r < 3 for r in in_talk])
        results.append(row)
    return results


def table(rows: list[list[str]], header: list[str]) -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    fmt = lambda r: "  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()  # noqa: E731
    return "\n".join([fmt(header), fmt(["-" * w for w in widths]), *map(fmt, rows)])


ANSWERED_TARGET = 0.92  # in-scope share (each set counting equally) the answer threshold keeps
L2 = 1.0  # ridge on the logistic weights: a handful of signals, a few hundred questions


@dataclass
class Judged:
    """One question's evidence (retrieve.Evidence.features) and, in scope, its first hit's rank."""

    set: str
    kind: str  # "in" (the transcript answers it), "plain" (plainly off-topic), "near" (on topic, unanswered)
    features: list[float]
    rank: int | None = None
    question: str = ""


def judge_suite(sets: Sequence[tuple[str, Engine, list[dict], list[dict]]]) -> list[Judged]:
    """Every set's questions judged: in scope, plainly off-topic, near misses. Sets of one folder
    over transcripts of their own (FriendsQA episodes) also lend each other near misses: the
    questions of the next episode, asked of this one, are on its kind of topic and mostly not
    answered there (by hand, about 3 in 12 were answered: adjacent episodes share stories)."""
    out = []
    for name, engine, questions, off_topic in sets:
        out += judge(engine, name, questions, "in")
        out += judge(engine, name, [q for q in off_topic if not q.get("hard")], "plain")
        out += judge(engine, name, [q for q in off_topic if q.get("hard")], "near")
    siblings: dict[str, list[tuple[str, Engine, list[dict]]]] = {}
    for name, engine, questions, _ in sets:
        if "/" in name and questions:
            siblings.setdefault(group(name), []).append((name, engine, questions))
    for family in siblings.values():
        for i, (name, engine, _) in enumerate(family):
            _, other, questions = family[(i + 1) % len(family)]
            if other is not engine:
                out += judge(engine, name, [{"question": q["question"]} for q in questions], "near")
    return out


def judge(engine: Engine, s: str, questions: list[dict], kind: str) -> list[Judged]:
    """Evidence of each question (with its history, if any) as the engine asks it."""
    out = []
    for q in questions:
        answer, evidence = engine.ask_with_evidence(q["question"], 10, history=q.get("history", ()))
        rank = None
        if kind == "in" and q.get("gold"):
            gold = gold_spans(engine, q["gold"])
            # A refusal shows only its closest passage: enough to know whether the first was right.
            rank = (
                first_hit(answer, gold)
                if answer.quotes
                else 0
                if answer.closest and is_hit(answer.closest, gold)
                else None
            )
        out.append(Judged(s, kind, evidence.features(), rank, q["question"]))
    return out


def _logistic(x: np.ndarray, y: np.ndarray, w: np.ndarray, l2: float = L2) -> np.ndarray:
    """Weighted logistic regression by Newton steps; returns [intercept, coefficients...]."""
    x1 = np.hstack([np.ones((len(x), 1)), x])
    beta = np.zeros(x1.shape[1])
    ridge = np.diag([0.0] + [l2] * x.shape[1])
    for _ in range(50):
        p = 1 / (1 + np.exp(-np.clip(x1 @ beta, -50, 50)))
        grad = x1.T @ (w * (p - y)) + ridge @ beta
        hess = (x1 * (w * p * (1 - p))[:, None]).T @ x1 + ridge + 1e-9 * np.eye(len(beta))
        step = np.linalg.solve(hess, grad)
        beta -= step
        if np.abs(step).max() < 1e-8:
            break
    return beta


def _weights(judged: Sequence[Judged]) -> np.ndarray:
    """Each (set, kind) counts as one: a large set does not outvote a small one."""
    cells: dict[tuple[str, str], int] = {}
    for j in judged:
        cells[j.set, j.kind] = cells.get((j.set, j.kind), 0) + 1
    return np.array([1 / cells[j.set, j.kind] for j in judged])


def scores(fit: dict, judged: Sequence[Judged]) -> np.ndarray:
    x = (np.array([j.features for j in judged]) - fit["mean"]) / fit["scale"]
    return 1 / (1 + np.exp(-np.clip(x @ np.array(fit["coef"]) + fit["intercept"], -50, 50)))


def _answered_share(p: np.ndarray, judged: Sequence[Judged], t: float) -> float:
    by_set: dict[str, list[bool]] = {}
    for x, j in zip(p, judged, strict=True):
        by_set.setdefault(j.set, []).append(x >= t)
    return float(np.mean([np.mean(v) for v in by_set.values()])) if by_set else 0.0


def fit_verdict(judged: Sequence[Judged], target: float = ANSWERED_TARGET) -> dict:
    """The verdict's logistic weights and its two thresholds, fitted on questions of every set.

    The score separates questions the transcript answers from near misses and plainly off-topic
    ones; "answer" starts where `target` of each set's in-scope questions are still answered.
    Under the cosine floor (`_floor`) a question is not in the interview; between, unsure."""
    x = np.array([j.features for j in judged], dtype=float)
    mean, scale = x.mean(axis=0), x.std(axis=0)
    scale[scale < 1e-9] = 1.0
    y = np.array([j.kind == "in" for j in judged], dtype=float)
    beta = _logistic((x - mean) / scale, y, _weights(judged))
    fit = {"mean": mean.round(5).tolist(), "scale": scale.round(5).tolist(),
           "intercept": round(float(beta[0]), 5), "coef": beta[1:].round(5).tolist()}  # fmt: skip
    p = scores(fit, judged)
    inside = [(v, j) for v, j in zip(p, judged, strict=True) if j.kind == "in"]
    p_in, j_in = np.array([v for v, _ in inside]), [j for _, j in inside]
    answer = max([t for t in np.unique(p_in) if _answered_share(p_in, j_in, t) >= target], default=0.0)
    counts = {k: sum(j.kind == k for j in judged) for k in ("in", "near", "plain")}
    return {**fit, "features": list(FEATURES), "answer": float(np.floor(answer * 1e5) / 1e5),
            "floor": _floor(judged), "questions": counts}  # fmt: skip


def _floor(judged: Sequence[Judged]) -> float:
    """The `on_topic` value under which a question is plainly off-topic: where it best splits
    in-scope questions (each set's share counting equally) from plainly off-topic ones, in the
    gap, nearer the off-topic side (refusing a real question costs more than an unsure answer)."""
    cos = np.array([on_topic(Evidence(*j.features)) for j in judged])
    c_in = cos[[j.kind == "in" for j in judged]]
    j_in = [j for j in judged if j.kind == "in"]
    plain = np.sort(cos[[j.kind == "plain" for j in judged]])
    best = None
    for t in np.unique(np.concatenate([c_in, plain])):
        refused = float(np.mean(plain < t)) if len(plain) else 1.0
        acc = (_answered_share(c_in, j_in, t) + refused) / 2
        lo = float(plain[plain < t].max()) if (plain < t).any() else float(t)
        key = (round(acc, 4), t - lo)
        if best is None or key > best[0]:
            best = (key, lo + 0.35 * (t - lo))
    return float(np.floor((best[1] if best else 0.0) * 1e5) / 1e5)


def verdict_figures(fit: dict, judged: Sequence[Judged]) -> dict[str, float | None]:
    """Answered, hit@1 among answered, plain and near-miss refusal, under one fit."""
    said = [verdict(Evidence(*j.features), fit)[0] for j in judged]
    pick = lambda kind: [(v, j) for v, j in zip(said, judged, strict=True) if j.kind == kind]  # noqa: E731
    inside, near, plain = pick("in"), pick("near"), pick("plain")
    answered = [j for v, j in inside if v == "answer"]
    share = lambda xs: float(np.mean(xs)) if len(xs) else None  # noqa: E731
    return {
        "answered": share([v == "answer" for v, _ in inside]),
        "hit1_answered": share([j.rank == 0 for j in answered]),
        "near_not_answered": share([v != "answer" for v, _ in near]),
        "near_refused": share([v == "not in the interview" for v, _ in near]),
        "plain_refused": share([v == "not in the interview" for v, _ in plain]),
    }


def cross_validate(judged: Sequence[Judged], folds: Sequence[str] | None = None) -> dict[str, dict]:
    """Each set's figures under a fit made without it (FriendsQA: each episode alone)."""
    out = {}
    for held in folds or sorted({j.set for j in judged}):
        fit = fit_verdict([j for j in judged if j.set != held])
        out[held] = verdict_figures(fit, [j for j in judged if j.set == held])
    return out


def held_out_curve(judged: Sequence[Judged], shares: Sequence[float]) -> list[tuple[float, float, float]]:
    """(answered, hit@1 among answered, near misses not answered) at each answered share, every
    question scored by a fit made without its set."""
    p = np.zeros(len(judged))
    for held in sorted({j.set for j in judged}):
        idx = [i for i, j in enumerate(judged) if j.set == held]
        fit = fit_verdict([j for j in judged if j.set != held])
        p[idx] = scores(fit, [judged[i] for i in idx])
    p_in = np.array([v for v, j in zip(p, judged, strict=True) if j.kind == "in"])
    ranks = [j.rank for j in judged if j.kind == "in"]
    p_near = np.array([v for v, j in zip(p, judged, strict=True) if j.kind == "near"])
    out = []
    for share in shares:
        t = np.quantile(p_in, 1 - share) if share < 1 else -np.inf
        answered = p_in >= t
        hit = (
            float(np.mean([r == 0 for r, a in zip(ranks, answered, strict=True) if a]))
            if answered.any()
            else 0.0
        )
        out.append((float(answered.mean()), hit, float(np.mean(p_near < t)) if len(p_near) else 0.0))
    return out


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
        if path.stem.endswith("_out_of_scope") and not path.with_name(path.stem[:-13] + ".jsonl").exists():
            if path.stem != "out_of_scope":  # off-topic questions of no set of their own: near misses
                rel = path.relative_to(folder).with_name(path.stem[:-13]).as_posix()
                sets.append(EvalSet(rel, default_data, [], read_jsonl(path)))
            continue
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
                          int(weights.sum()), name, mean("hit1_answered"), None, mean("conversation_hit3"),
                          mean("highlight"), mean("asker_first")))  # fmt: skip
    return out
