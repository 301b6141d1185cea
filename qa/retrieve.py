"""Question -> ranked passages: dense similarity, BM25 and the interview's structure.

Everything here is a pure function of arrays built once per corpus; no model inside.
A passage's score adds
- its cosine similarity to the question (the sentence itself);
- BM25 of the question against the sentence, the sentence with the question it answers, and the
  whole exchange (question turn + answer turn), each divided by its best value for this question;
- the cosine similarity of the question to the interviewer's question this passage answers
  (the mean vector of that turn's sentences): a user's question often paraphrases it;
- a penalty for the interviewer's own lines: users want the interviewee's words, and the
  interviewer's question matches a user's question better than the answer does.
Weights were tuned on the public eval set with a coarse grid and picked from the middle of the
plateau, not its edge (README, "Retrieval").
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import sparse

from qa.transcript import QUESTION, Passage

WEIGHTS = {"dense": 1.0, "asked": 0.4, "sentence": 0.5, "context": 0.15, "exchange": 0.25}
INTERVIEWER_PENALTY = 0.8
CANDIDATES = 64  # per signal; the union is scored in full
STEM = 6  # prefix stemming: "intervenes", "intervention" -> "interv"

STOPWORDS = frozenset(
    """a about above after again all also am an and any are as at be been before being below
    between both but by can could did do does doing down during each few for from further had has
    have having he her here hers him his how i if in into is it its itself just me more most my
    no nor not now of off on once only or other our ours out over own same she should so some such
    than that the their theirs them then there these they this those through to too under until up
    very was we were what many much when where which while who whom why will with would you your yours
    s t d ll m re ve don doesn didn isn aren wasn weren won wouldn shouldn couldn""".split()
)


@dataclass(frozen=True)
class Hit:
    passage: int  # position in the corpus' passages
    score: float


def tokenize(text: str) -> list[str]:
    """Lower-cased, accent-folded word stems without stopwords."""
    text = text.lower()
    if not text.isascii():
        text = "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c))
    return [w[:STEM] for w in re.findall(r"\w+", text) if w not in STOPWORDS]


class Bm25:
    """BM25 over a fixed list of documents, as a sparse doc x term matrix of term weights."""

    def __init__(self, docs: Sequence[str], k1: float = 1.2, b: float = 0.75) -> None:
        tokens = [tokenize(d) for d in docs]
        self.vocab: dict[str, int] = {}
        rows, cols, tfs = [], [], []
        for i, toks in enumerate(tokens):
            counts: dict[int, int] = {}
            for w in toks:
                j = self.vocab.setdefault(w, len(self.vocab))
                counts[j] = counts.get(j, 0) + 1
            rows += [i] * len(counts)
            cols += list(counts)
            tfs += list(counts.values())
        n = max(len(docs), 1)
        lengths = np.array([len(t) for t in tokens], dtype=np.float32)
        avg = float(lengths.mean()) if len(lengths) and lengths.mean() > 0 else 1.0
        df = np.bincount(np.array(cols, dtype=np.int64), minlength=len(self.vocab))
        idf = np.log1p((n - df + 0.5) / (df + 0.5)).astype(np.float32)
        tf = np.array(tfs, dtype=np.float32)
        norm = k1 * (1 - b + b * lengths[np.array(rows, dtype=np.int64)] / avg)
        weights = idf[np.array(cols, dtype=np.int64)] * tf * (k1 + 1) / (tf + norm)
        self.matrix = sparse.csc_matrix(
            (weights, (rows, cols)), shape=(len(docs), len(self.vocab)), dtype=np.float32
        )
        self.idf = idf

    def terms(self, query: str) -> list[int]:
        return sorted({self.vocab[w] for w in tokenize(query) if w in self.vocab})

    def scores(self, query: str) -> np.ndarray:
        cols = self.terms(query)
        if not cols:
            return np.zeros(self.matrix.shape[0], dtype=np.float32)
        return np.asarray(self.matrix[:, cols].sum(axis=1)).ravel()


def _scaled(x: np.ndarray) -> np.ndarray:
    top = float(x.max()) if len(x) else 0.0
    return x / top if top > 0 else x


def _top(x: np.ndarray, n: int) -> np.ndarray:
    if len(x) <= n:
        return np.arange(len(x))
    return np.argpartition(-x, n)[:n]


class Ranker:
    """The lexical indexes and structure of a list of passages, built once."""

    def __init__(self, passages: Sequence[Passage], vectors: np.ndarray) -> None:
        self.passages = list(passages)
        self.vectors = vectors
        by_turn: dict[tuple[str, int], list[str]] = {}
        for p in self.passages:
            by_turn.setdefault((p.source, p.turn), []).append(p.text)
        turn_text = {key: " ".join(texts) for key, texts in by_turn.items()}
        self.sentence = Bm25([p.text for p in self.passages])
        self.context = Bm25([f"{p.asked} {p.text}" for p in self.passages])
        self.exchange = Bm25([f"{p.asked} {turn_text[(p.source, p.turn)]}" for p in self.passages])
        self.interviewer = np.array([p.role == QUESTION for p in self.passages], dtype=bool)
        self.asked_vectors, self.asked_row = self._asked(vectors)

    def _asked(self, vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """One vector per question turn, and for each passage the row of the question it
        answers (an interviewer's passage points at its own turn)."""
        turns: dict[tuple[str, int], list[int]] = {}
        for i, p in enumerate(self.passages):
            turns.setdefault((p.source, p.turn), []).append(i)
        rows, out, current, source = [], np.zeros(len(self.passages), dtype=np.int64), -1, None
        for (turn_source, _), members in turns.items():
            if self.passages[members[0]].role == QUESTION or turn_source != source:
                source = turn_source
                mean = vectors[members].mean(axis=0)
                rows.append(mean / (np.linalg.norm(mean) or 1.0))
                current = len(rows) - 1
            out[members] = current
        dim = vectors.shape[1] if vectors.ndim == 2 else 0
        matrix = np.array(rows, dtype=np.float32) if rows else np.zeros((0, dim), np.float32)
        return matrix, out

    def lexical(self, question: str) -> np.ndarray:
        return (
            WEIGHTS["sentence"] * _scaled(self.sentence.scores(question))
            + WEIGHTS["context"] * _scaled(self.context.scores(question))
            + WEIGHTS["exchange"] * _scaled(self.exchange.scores(question))
        )

    def rank(
        self,
        question: str,
        query_vector: np.ndarray,
        dense_hits: Sequence[Hit],
        allowed: np.ndarray | None = None,
    ) -> list[Hit]:
        """All candidate passages, best first. dense_hits come from the vector index."""
        lexical = self.lexical(question)
        if allowed is not None:
            lexical = np.where(allowed, lexical, -np.inf)
        candidates = {h.passage for h in dense_hits}
        candidates.update(int(i) for i in _top(lexical, CANDIDATES) if lexical[i] > 0)
        if allowed is not None:
            candidates = {i for i in candidates if allowed[i]}
        if not candidates:
            return []
        idx = np.fromiter(candidates, dtype=np.int64)
        dense = self.vectors[idx] @ query_vector
        asked = (self.asked_vectors @ query_vector)[self.asked_row[idx]]
        score = WEIGHTS["dense"] * dense + WEIGHTS["asked"] * asked + lexical[idx]
        score -= INTERVIEWER_PENALTY * self.interviewer[idx]
        order = np.argsort(-score, kind="stable")
        return [Hit(int(idx[i]), float(score[i])) for i in order]

    def coverage(self, question: str) -> float:
        """Share of the question's words (weighted by rarity) that the corpus contains at all."""
        toks = set(tokenize(question))
        if not toks:
            return 0.0
        known = [self.sentence.vocab.get(w) for w in toks]
        n = self.sentence.matrix.shape[0]
        unseen_idf = math.log1p((n + 0.5) / 0.5)
        total = sum(self.sentence.idf[j] if j is not None else unseen_idf for j in known)
        found = sum(self.sentence.idf[j] for j in known if j is not None)
        return float(found / total) if total > 0 else 0.0


def dense_search(index, query_vector: np.ndarray, k: int) -> list[Hit]:
    """Nearest passages by cosine: the FAISS index holds unit vectors, row = passage position."""
    if index.ntotal == 0 or k <= 0:
        return []
    scores, rows = index.search(query_vector.reshape(1, -1).astype(np.float32), min(k, index.ntotal))
    return [Hit(int(r), float(s)) for r, s in zip(rows[0], scores[0], strict=True) if r >= 0]
