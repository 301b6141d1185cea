"""Question -> ranked quotes: ALL ranking lives here, as pure functions of arrays built once.

The unit ranked and quoted is a window of 1-3 adjacent sentences of one turn. Each candidate
window gets four signals, each turned into a z-score over this question's candidate pool, so
that no signal wins by its scale on one corpus, and added with the WEIGHTS:
- dense: the cosine of the question to the window, embedded as "Speaker: text";
- late interaction (MaxSim, as in ColBERT, with no training): the mean over the question's content
  tokens of their best cosine to any token of the window, from the same model's token vectors;
- BM25 of the question against the window with its speaker, the question it answers and its
  section headline, so that names, questions and headlines are searchable context;
- asked: for an interviewee's window, the cosine of the question to the interviewer's question it
  replies to (its best window), so that a reply whose words lean on that question ("in this
  regard") is found through it, instead of the question itself taking the reply's place.
An interviewer's window is ranked PREFER_ANSWER lower: when the evidence is close, the
interviewee's words win, but an answer only the interviewer's words hold still comes first.
The verdict (answer, unsure, not in the interview) is read from the Evidence of the best
windows. How these were chosen, and on which questions they were measured: README, "Retrieval".
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Protocol

import numpy as np
from scipy import sparse

from qa.transcript import ANSWER, QUESTION, TITLE, Passage

MAX_SENTENCES = 3  # a window is 1 to this many adjacent sentences of one turn
MAX_WINDOW_CHARS = 400  # a longer run of sentences is not one quote: its sentences still are
MAX_ASKED_CHARS = 1000  # of the question a window answers, as its lexical context
CANDIDATES = 64  # per signal (dense, BM25); their union, with its single sentences, is scored
WEIGHTS = {"dense": 1.0, "maxsim": 1.0, "lexical": 0.5, "asked": 0.5}  # of the z-scores (bench/tune.py)
PREFER_ANSWER = 1.2  # in z-units, taken off an interviewer's window (bench/tune.py)
SEEN_PENALTY = 0.5  # in z-units: a follow-up ranks the quote just shown this much lower
HIGHLIGHT_TYPE = 1.0  # in z-units: for the highlight, a sentence of the type asked for (a time, ...)
ABOUT_TITLE = 10.0  # in z-units, added to a title line for a question about the interview: it comes first
STEM = 6  # prefix stemming: "intervenes", "intervention" -> "interv"
TIE = 1e-5  # BM25 scores this close are equal (float rounding differs between backends)

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
class Window:
    """Passage rows first..last (inclusive) of one turn: one candidate quote."""

    first: int
    last: int


@dataclass(frozen=True)
class Hit:
    """A ranked window and the sentence in it that answers best (`best`, a passage row)."""

    first: int
    last: int
    best: int
    score: float

    def rows(self) -> range:
        return range(self.first, self.last + 1)


@dataclass(frozen=True)
class Query:
    """A question as the model sees it: its vector, and its content tokens' unit vectors."""

    text: str
    vector: np.ndarray
    tokens: np.ndarray
    words: np.ndarray | None = None  # per token, the word it is a piece of (None: each its own)


EVIDENCE_WINDOWS = 3  # the best windows the verdict looks at


@dataclass(frozen=True)
class Evidence:
    """What the verdict is read from, for one question: each a way a near miss (a question on
    the topic that the transcript does not answer) differs from a question it answers."""

    cosine: float  # the best window cosine
    coverage: float  # share of the question's words (by rarity) found in the transcripts at all
    word_min: float  # the worst-met question word's best cosine in the best windows (its pieces' mean)
    word_low2: float  # the mean of the two worst-met words'
    token_mean: float  # the mean over all question tokens
    margin: float  # the best window's fused score above the one EVIDENCE_WINDOWS down
    agree: float  # share of the three signals that each rank the best window among their best
    type_missed: float  # 1 when the question asks for a number, a time or a person the best lacks
    score: float  # the best window's fused score: how far above the pool's other windows it stands
    about: bool = False  # a question about the interview itself, and a title line first to answer it

    def features(self) -> list[float]:
        return [self.cosine, self.coverage, self.word_min, self.word_low2, self.token_mean, self.margin,
                self.agree, self.type_missed, self.score]  # fmt: skip


FEATURES = (
    "cosine",
    "coverage",
    "word_min",
    "word_low2",
    "token_mean",
    "margin",
    "agree",
    "type_missed",
    "score",
)
VERDICT_ANSWER, VERDICT_UNSURE, VERDICT_NONE = "answer", "unsure", "not in the interview"


def confidence(evidence: Evidence, fit: dict) -> float:
    """A logistic score of the evidence, its weights fitted per model (`python -m qa calibrate`)."""
    x = (np.array(evidence.features()) - np.array(fit["mean"])) / np.array(fit["scale"])
    return 1 / (1 + math.exp(-float(np.clip(x @ np.array(fit["coef"]) + fit["intercept"], -50, 50))))


FLOOR_COVERAGE = 0.1  # weight of word coverage beside the best cosine, for the floor (the earlier fit)


def on_topic(evidence: Evidence) -> float:
    """How much the transcripts are on the question's topic at all: the best window cosine, and a
    little of the share of its words they hold."""
    return evidence.cosine + FLOOR_COVERAGE * evidence.coverage


def verdict(evidence: Evidence, fit: dict) -> tuple[str, float]:
    """answer, unsure or not in the interview. Not in the interview: `on_topic` is under the
    floor (nothing is on the question's topic: plainly off-topic). Otherwise an answer
    when the confidence reaches its threshold, else unsure (on the topic, the answer in doubt)."""
    p = confidence(evidence, fit)
    if evidence.about:  # who is speaking, and what this is, are what a title line says
        return VERDICT_ANSWER, p
    if on_topic(evidence) < fit["floor"]:
        return VERDICT_NONE, p
    return (VERDICT_ANSWER if p >= fit["answer"] else VERDICT_UNSURE), p


_NUMBER = re.compile(
    r"\d|\b(?:one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|fifteen|twenty|thirty|forty|"
    r"fifty|hundreds?|thousands?|millions?|billions?|dozens?|half|percent|once|twice)\b",
    re.I,
)
_TIME = re.compile(
    r"\b\d{1,4}\b|\b(?:january|february|march|april|may|june|july|august|september|october|november|"
    r"december|monday|tuesday|wednesday|thursday|friday|saturday|sunday|today|yesterday|tomorrow|tonight|"
    r"morning|evening|night|weeks?|months?|years?|days?|decades?|century|ago|recently|soon|later)\b",
    re.I,
)
_PERSON = re.compile(
    r"(?<![.!?]\s)(?<!^)\b[A-Z][a-z]+|\b(?:I|me|my|we|us|our|he|him|his|she|her|they|them|their|you|"
    r"president|minister|secretary|representative|general|leader|chief|head|government|allies|people|"
    r"mother|father|wife|husband|friend|friends|boss|brother|sister|son|daughter|guy|girl|man|woman)\b"
)


def question_type(question: str) -> str:
    """ "number", "time", "person" or "" for what the question's opening asks for."""
    q = question.lower()
    if re.search(r"\bhow (?:many|much|long|old|far|often)\b|\bwhat (?:percentage|number|amount)\b", q):
        return "number"
    when = r"^\W*(?:and |so |but )?when\b|\b(?:since|until) when\b"
    if re.search(when + r"|\b(?:what|which) (?:year|date|day|month|time)\b", q):
        return "time"
    if re.search(r"^\W*(?:who|whom|whose)\b|\b(?:which|what) (?:person|people|country|countries)\b", q):
        return "person"
    return ""


def type_missed(question: str, said: str) -> bool:
    """Whether the question asks for a number, a time or a person and `said` holds none."""
    kind = question_type(question)
    pattern = {"number": _NUMBER, "time": _TIME, "person": _PERSON}.get(kind)
    return bool(pattern) and not pattern.search(said)


_ABOUT = re.compile(
    r"^\W*(?:who(?:'s| is| was| are) (?:he|she|this|they|the (?:guest|interviewee|speaker|interviewer|host|"
    r"journalist)s?)\W*$"
    r"|who (?:interviewed|is interviewing|was interviewing|asked|asks|asked the questions|talked to|spoke to|"
    r"spoke with|is talking|is he talking|is she talking|was he talking|was she talking)\b"
    r"|what(?:'s| is| was) (?:this|the) (?:interview|conversation|talk|podcast|episode|transcript|"
    r"discussion)(?: about)?\W*$|what(?:'s| is) this about\W*$)",
    re.I,
)
_WHO_IS = re.compile(r"^\W*(?:who(?:'s| is| was)|tell me about)\s+(.+?)\W*$", re.I)


def about_the_interview(question: str, speakers: Sequence[str]) -> bool:
    """Whether a question asks who speaks or what the talk is ("Who is he?", "Who interviewed
    him?", "Who is <a speaker>?", "What is this interview about?"): a title line answers it."""
    if _ABOUT.search(question):
        return True
    m = _WHO_IS.match(question)
    if not m:
        return False
    name = m.group(1).lower().split()
    return any(
        name == s.lower().split() or (len(name) == 1 and name[0] in s.lower().split()) for s in speakers
    )


def tokenize(text: str) -> list[str]:
    """Lower-cased, accent-folded word stems without stopwords."""
    text = text.lower()
    if not text.isascii():
        text = "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c))
    return [w[:STEM] for w in re.findall(r"\w+", text) if w not in STOPWORDS]


def content_tokens(vectors: np.ndarray, pieces: Sequence[str]) -> np.ndarray:
    """The token vectors of a question that carry meaning: word pieces that are not stopwords
    or punctuation. All of them when none qualify, so that a question always has tokens."""
    keep = [
        i for i, p in enumerate(pieces) if (w := p.lstrip("#▁Ġ").lower()).isalnum() and w not in STOPWORDS
    ]
    return vectors[keep] if keep else vectors


def content_words(pieces: Sequence[str]) -> np.ndarray:
    """For the tokens `content_tokens` keeps, the word each is a piece of ("rec", "##ci",
    "##ling" are one word), numbered from 0: a rare word split in pieces counts once."""
    keep = [
        i for i, p in enumerate(pieces) if (w := p.lstrip("#▁Ġ").lower()).isalnum() and w not in STOPWORDS
    ]
    keep = keep or list(range(len(pieces)))
    ids = np.cumsum([not (pieces[i].startswith("##") and i - 1 in keep) for i in keep]) - 1
    return ids.astype(np.int64)


def windows(passages: Sequence[Passage]) -> list[Window]:
    """Every run of 1..MAX_SENTENCES adjacent sentences of one turn (and of one subtitle cue),
    file by file: a file's single sentences in order, then its longer runs. Rows of one file stay
    together, so that a file's vectors are stored and reused as one block."""
    out: list[Window] = []
    start = 0
    for end in range(1, len(passages) + 1):
        if end < len(passages) and passages[end].source == passages[start].source:
            continue
        out += [Window(i, i) for i in range(start, end)]
        for size in range(2, MAX_SENTENCES + 1):
            for i in range(start, end - size + 1):
                a, b = passages[i], passages[i + size - 1]
                if (a.turn, a.time) == (b.turn, b.time) and b.end - a.start <= MAX_WINDOW_CHARS:
                    out.append(Window(i, i + size - 1))
        start = end
    return out


def window_text(passages: Sequence[Passage], w: Window) -> str:
    """What is embedded for a window: its speaker, then its sentences."""
    text = " ".join(p.text for p in passages[w.first : w.last + 1])
    speaker = passages[w.first].speaker
    return f"{speaker}: {text}" if speaker else text


def _context(passages: Sequence[Passage], w: Window) -> str:
    """What BM25 reads for a window. Of a long question only its end, where the asking is: a
    window of a turn that replies to a long talk would otherwise carry the whole talk."""
    p = passages[w.first]
    asked = p.asked[-MAX_ASKED_CHARS:]
    return " ".join([p.speaker, asked, p.section, *(q.text for q in passages[w.first : w.last + 1])])


def lexical_doc(passages: Sequence[Passage], w: Window) -> str:
    """The words BM25 reads of a window (`tokenize`d), as an engine's text index is given them."""
    return " ".join(tokenize(_context(passages, w)))


def idf(documents: int, df: np.ndarray) -> np.ndarray:
    """BM25's inverse document frequency of words found in `df` of `documents` documents."""
    return np.log1p((documents - df + 0.5) / (df + 0.5)).astype(np.float32)


class Rarity:
    """How rare each word is among a list of documents: BM25's idf, as `Bm25` computes it,
    without its document x term matrix (the verdict weighs a question's words, scores no
    sentence with them)."""

    def __init__(self, docs: Sequence[str]) -> None:
        df: Counter[str] = Counter()  # documents holding each word
        held = 0  # documents with a word
        for doc in docs:
            words = set(tokenize(doc))
            held += bool(words)
            df.update(words)
        self.docs = len(docs)
        self.vocab = {w: j for j, w in enumerate(df)}
        self.idf = idf(max(held, 1), np.array(list(df.values()), dtype=np.int64))


class Bm25:
    """BM25 over a fixed list of documents, as a sparse doc x term matrix of term weights."""

    def __init__(self, docs: Sequence[str], k1: float = 1.2, b: float = 0.75) -> None:
        self.vocab: dict[str, int] = {}
        rows, cols, tfs, lengths = [], [], [], []
        for i, doc in enumerate(docs):
            toks = tokenize(doc)
            counts: dict[int, int] = {}
            for w in toks:
                j = self.vocab.setdefault(w, len(self.vocab))
                counts[j] = counts.get(j, 0) + 1
            rows += [i] * len(counts)
            cols += list(counts)
            tfs += list(counts.values())
            lengths.append(len(toks))
        # Documents without a word are not counted, as a text index does not hold them
        # (embeddings/edge.py): both backends score alike.
        length = np.array(lengths, dtype=np.float32)
        n = max(int((length > 0).sum()), 1)
        avg = float(length.sum()) / n if length.sum() > 0 else 1.0
        cols_a, rows_a = np.array(cols, dtype=np.int64), np.array(rows, dtype=np.int64)
        weight = idf(n, np.bincount(cols_a, minlength=len(self.vocab)))
        tf = np.array(tfs, dtype=np.float32)
        norm = k1 * (1 - b + b * length[rows_a] / avg)
        weights = weight[cols_a] * tf * (k1 + 1) / (tf + norm)
        self.matrix = sparse.csc_matrix((weights, (rows_a, cols_a)), shape=(len(docs), len(self.vocab)),
                                        dtype=np.float32)  # fmt: skip
        self.idf = weight

    def terms(self, query: str) -> list[int]:
        return self.columns(tokenize(query))

    def columns(self, words) -> list[int]:
        """The matrix columns of these words, each once, in order; unknown words have none."""
        return sorted({self.vocab[w] for w in words if w in self.vocab})

    def scores(self, query: str) -> np.ndarray:
        return self.column_sum(self.terms(query))

    def column_sum(self, cols: list[int]) -> np.ndarray:
        """Per document, the sum of these terms' weights: `matrix[:, cols].sum(axis=1)`, added
        in the same order (column by column, in float32), so the same numbers, read straight
        from the CSC arrays: scipy's slicing took a tenth of a question's ranking."""
        out = np.zeros(self.matrix.shape[0], dtype=np.float32)
        m = self.matrix
        for j in cols:
            rows = m.indices[m.indptr[j] : m.indptr[j + 1]]
            out[rows] += m.data[m.indptr[j] : m.indptr[j + 1]]
        return out


def zscore(x: np.ndarray) -> np.ndarray:
    sd = float(x.std()) if len(x) else 0.0
    return (x - x.mean()) / sd if sd > 1e-9 else np.zeros_like(x)


def _top(x: np.ndarray, n: int) -> np.ndarray:
    if len(x) <= n:
        return np.arange(len(x))
    return np.argpartition(-x, n)[:n]


def dense_search(index, query_vector: np.ndarray, k: int) -> list[tuple[int, float]]:
    """Nearest rows by cosine, as (row, score): the index holds unit vectors."""
    if index.ntotal == 0 or k <= 0:
        return []
    scores, rows = index.search(query_vector.reshape(1, -1).astype(np.float32), min(k, index.ntotal))
    return [(int(r), float(s)) for r, s in zip(rows[0], scores[0], strict=True) if r >= 0]


class Signals(Protocol):
    """What ranking asks of the place where windows live, by window row, and nothing more: the
    fusion below is the same over every backend. `allowed` masks windows (None: all of them).

    In memory (`InMemory`, over the arrays of the FAISS folder) or computed by an engine
    (embeddings/edge.py, Qdrant Edge)."""

    def nearest(self, vector: np.ndarray, k: int, allowed: np.ndarray | None) -> list[tuple[int, float]]:
        """The k windows nearest by cosine, best first, as (row, cosine)."""
        ...

    def cosine(self, vector: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """The cosine of these windows to the vector."""
        ...

    def token_best(self, query_tokens: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """For windows of one sentence: each query token's best cosine to any of its tokens,
        shape (len(rows), len(query_tokens)); -1 for a window with no token vectors."""
        ...

    def bm25_top(self, terms: list[str], k: int, allowed: np.ndarray | None) -> list[tuple[int, float]]:
        """The k windows of best BM25 score above 0 for these terms (`tokenize`d), as (row, score),
        with every window whose score is within TIE of the k-th (many windows tie on one word)."""
        ...

    def bm25(self, terms: list[str], rows: np.ndarray) -> np.ndarray:
        """The BM25 scores of these windows (0 where no term occurs)."""
        ...


def sentence_rows(first: np.ndarray, last: np.ndarray) -> np.ndarray:
    """Per window (its first and last sentence), its sentences: MAX_SENTENCES a row, the last
    one repeated where the window is shorter."""
    return np.minimum(first[:, None] + np.arange(MAX_SENTENCES), last[:, None])


_F16_BITS = np.int32(-0x70002000)  # 0x8FFFE000: a float32's sign, exponent and mantissa bits


def as_float32(half: np.ndarray) -> np.ndarray:
    """Finite float16 values as float32, exactly (as `astype` gives them), in a fifth of the
    time: numpy's own cast is a scalar loop, and was most of a question's ranking (README,
    "Speed"). The bits are moved into place (the int16 sign-extended, shifted, masked) and
    scaled by 2**112, the difference of the two exponent biases; that also makes a float16
    subnormal a float32 normal. Unit token vectors hold no inf or NaN."""
    if half.dtype != np.float16:
        return np.asarray(half, np.float32)
    bits = np.ascontiguousarray(half).view(np.int16).astype(np.int32)
    bits <<= 13
    bits &= _F16_BITS
    out = bits.view(np.float32)
    out *= np.float32(2.0**112)
    return out


class InMemory:
    """The signals from arrays held in this process: the FAISS folder's vectors and token vectors,
    and a BM25 index of the windows' lexical context built here."""

    def __init__(
        self, first: np.ndarray, vectors: np.ndarray, tokens: np.ndarray, token_counts: np.ndarray,
        docs: Sequence[str], index=None,
    ) -> None:  # fmt: skip
        self.first, self.vectors, self.tokens, self.index = first, vectors, tokens, index
        self.token_start = np.concatenate([[0], np.cumsum(token_counts)]).astype(np.int64)
        self.lexical = Bm25(docs)

    def nearest(self, vector: np.ndarray, k: int, allowed: np.ndarray | None) -> list[tuple[int, float]]:
        if allowed is None and self.index is not None:
            return dense_search(self.index, vector, k)
        rows = np.arange(len(self.vectors)) if allowed is None else np.flatnonzero(allowed)
        sims = self.vectors[rows] @ vector
        order = np.argsort(-sims, kind="stable")[:k]
        return [(int(rows[i]), float(sims[i])) for i in order]

    def cosine(self, vector: np.ndarray, rows: np.ndarray) -> np.ndarray:
        return self.vectors[rows] @ vector

    def token_best(self, query_tokens: np.ndarray, rows: np.ndarray) -> np.ndarray:
        sentences = self.first[rows]
        counts = self.token_start[sentences + 1] - self.token_start[sentences]
        best = np.full((len(sentences), len(query_tokens)), -1.0, dtype=np.float32)
        has = counts > 0
        if has.any():
            starts = np.concatenate([[0], np.cumsum(counts[has])[:-1]])  # of each sentence in `take`
            take = np.arange(counts.sum()) + np.repeat(self.token_start[sentences[has]] - starts, counts[has])
            sims = as_float32(self.tokens[take]) @ query_tokens.T.astype(np.float32)
            best[has] = np.maximum.reduceat(sims, starts, axis=0)
        return best

    def _scores(self, terms: list[str]) -> np.ndarray:
        return self.lexical.column_sum(self.lexical.columns(terms))

    def bm25_top(self, terms: list[str], k: int, allowed: np.ndarray | None) -> list[tuple[int, float]]:
        lexical = self._scores(terms)
        if allowed is not None:
            lexical = np.where(allowed, lexical, 0.0)
        found = np.flatnonzero(lexical > 0)
        if len(found) > k:  # and those tied with the k-th: no backend's order among equals decides
            kth = -np.partition(-lexical[found], k - 1)[k - 1]
            found = found[lexical[found] >= kth - TIE]
        return [(int(i), float(lexical[i])) for i in found]

    def bm25(self, terms: list[str], rows: np.ndarray) -> np.ndarray:
        return self._scores(terms)[rows]


class Ranker:
    """Windows of a list of passages, ranked from the signals of where their vectors live.

    Without `signals`, in memory: `vectors[i]` embeds `windows[i]`; `tokens` holds each passage's
    token vectors in passage order, `token_counts[j]` of them for passage j."""

    def __init__(
        self,
        passages: Sequence[Passage],
        vectors: np.ndarray | None = None,
        tokens: np.ndarray | None = None,
        token_counts: np.ndarray | None = None,
        index=None,
        signals: Signals | None = None,
    ) -> None:
        self.passages = list(passages)
        self.windows = windows(self.passages)
        self.first = np.array([w.first for w in self.windows], dtype=np.int64)
        self.last = np.array([w.last for w in self.windows], dtype=np.int64)
        self.single = np.flatnonzero(self.first == self.last)  # passage i alone is row single[i]
        if signals is None:
            if vectors is None or len(vectors) != len(self.windows):
                n = 0 if vectors is None else len(vectors)
                raise ValueError(f"{n} vectors for {len(self.windows)} windows")
            docs = [_context(self.passages, w) for w in self.windows]
            signals = InMemory(self.first, vectors, tokens, token_counts, docs, index)
        self.signals = signals
        self.rarity = Rarity([p.text for p in self.passages])  # of the question's words, for coverage
        self.asker = np.array([self.passages[w.first].role == QUESTION for w in self.windows], dtype=bool)
        self.asked_start, self.asked_rows = self._asked()
        self.title = np.array([self.passages[w.first].role == TITLE for w in self.windows], dtype=bool)
        self.speakers = sorted({p.speaker for p in self.passages if p.role != TITLE and p.speaker})

    def _asked(self) -> tuple[np.ndarray, np.ndarray]:
        """Per window, the rows of the interviewer's windows of the question it replies to, as
        `asked_rows[asked_start[r]:asked_start[r + 1]]` (none for the interviewer's own windows
        and where nobody interviews)."""
        by_turn: dict[tuple[str, int], list[int]] = {}
        for r, w in enumerate(self.windows):
            p = self.passages[w.first]
            if p.role == QUESTION:
                by_turn.setdefault((p.source, p.turn), []).append(r)
        latest: dict[str, int] = {}
        replies_to = []  # per passage: the interviewer's turn it replies to
        for p in self.passages:
            if p.role == QUESTION:
                latest[p.source] = p.turn
            replies_to.append(latest.get(p.source) if p.role == ANSWER else None)
        rows = [
            by_turn.get((self.passages[w.first].source, t), [])
            if (t := replies_to[w.first]) is not None
            else []
            for w in self.windows
        ]
        start = np.concatenate([[0], np.cumsum([len(r) for r in rows])]).astype(np.int64)
        flat = np.array([x for r in rows for x in r], dtype=np.int64)
        return start, flat

    def asked(self, vector: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per window row: the best cosine of the question to the interviewer's question it
        replies to, and whether it replies to one at all. The cosines come from the signals, over
        the interviewer's window rows, so that an engine holding the vectors computes them."""
        counts = self.asked_start[rows + 1] - self.asked_start[rows]
        has = counts > 0
        out = np.zeros(len(rows), dtype=np.float32)
        if has.any():
            take = np.concatenate(
                [self.asked_rows[self.asked_start[r] : self.asked_start[r + 1]] for r in rows[has]]
            )
            unique, back = np.unique(take, return_inverse=True)  # many replies share one question
            sims = np.asarray(self.signals.cosine(vector, unique), dtype=np.float32)[back]
            out[has] = np.maximum.reduceat(sims, np.concatenate([[0], np.cumsum(counts[has])[:-1]]))
        return out, has

    def _windows_of(self, allowed: np.ndarray | None) -> np.ndarray | None:
        """A mask over passages as a mask over windows: all of a window's sentences allowed."""
        return None if allowed is None else allowed[self.first] & allowed[self.last]

    def dense(self, vector: np.ndarray, allowed: np.ndarray | None, k: int) -> list[tuple[int, float]]:
        """The k windows nearest by cosine, among the allowed windows if a mask is given."""
        return self.signals.nearest(vector, k, allowed)

    def maxsim(self, query_tokens: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """Per window row: mean over query tokens of the best cosine to any of its tokens."""
        return self.token_best(query_tokens, rows).mean(axis=1)

    def token_best(self, query_tokens: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """Per window row and query token: the best cosine to any token of the window. A window
        of several sentences takes the best over its sentences' own token vectors."""
        sentences = np.unique(sentence_rows(self.first[rows], self.last[rows]))
        best = self.signals.token_best(query_tokens, self.single[sentences])  # per sentence
        a, b = np.searchsorted(sentences, self.first[rows]), np.searchsorted(sentences, self.last[rows])
        out = best[a]  # the max over each window's (consecutive) sentences
        for k in range(1, MAX_SENTENCES):
            out = np.maximum(out, best[np.minimum(a + k, b)])
        return out

    def rank(self, query: Query, allowed: np.ndarray | None = None, pool: int = CANDIDATES) -> list[Hit]:
        """Candidate windows, best first. `allowed` masks passages (a filter by file or speaker)."""
        return self.search(query, allowed, pool)[0]

    def search(
        self, query: Query, allowed: np.ndarray | None = None, pool: int = CANDIDATES
    ) -> tuple[list[Hit], Evidence]:
        """Candidate windows, best first, and the evidence the verdict is read from."""
        allowed = self._windows_of(allowed)
        terms = sorted(set(tokenize(query.text)))
        dense = self.dense(query.vector, allowed, pool)
        candidates = {r for r, _ in dense}
        candidates.update(r for r, _ in self.signals.bm25_top(terms, pool, allowed))
        about = about_the_interview(query.text, self.speakers)
        titles = self.title if allowed is None else self.title & allowed
        if about:
            candidates.update(int(i) for i in np.flatnonzero(titles))
        if not candidates:
            return [], Evidence(0.0, self.coverage(query.text), -1.0, -1.0, -1.0, 0.0, 0.0, 0.0, 0.0)
        # Every sentence of a candidate is scored alone too: that is how the highlight is chosen.
        pool_rows = np.array(sorted(candidates), dtype=np.int64)
        spans = sentence_rows(self.first[pool_rows], self.last[pool_rows])
        rows = np.union1d(pool_rows, self.single[spans])  # sorted, each once
        dense_rows = self.signals.cosine(query.vector, rows)
        asked, replies = self.asked(query.vector, rows)
        tokens = self.token_best(query.tokens, rows)
        maxsim = tokens.mean(axis=1) if tokens.shape[1] else np.zeros(len(rows))  # no token: no signal
        measured = (dense_rows, maxsim, self.signals.bm25(terms, rows))
        score = (
            WEIGHTS["dense"] * zscore(measured[0])
            + WEIGHTS["maxsim"] * zscore(measured[1])
            + WEIGHTS["lexical"] * zscore(measured[2])
            # A window that replies to no question is measured by its own cosine in this z-score.
            + WEIGHTS["asked"] * replies * zscore(np.where(replies, asked, dense_rows))
            - PREFER_ANSWER * self.asker[rows]
            + ABOUT_TITLE * about * self.title[rows]
        )
        first, last = self.first[rows], self.last[rows]
        alone = np.full(len(self.passages), -np.inf)  # each sentence's score on its own
        alone[first[first == last]] = score[first == last]
        kind = question_type(query.text)
        if kind:  # "When did it begin?": the sentence that holds a time answers it
            said = first[(first == last) & np.isfinite(score)]
            alone[said] += HIGHLIGHT_TYPE * np.array(
                [not type_missed(query.text, self.passages[i].text) for i in said]
            )
        spans = sentence_rows(first, last)
        best = spans[np.arange(len(rows)), np.argmax(alone[spans], axis=1)]
        hits = [
            Hit(a, b, c, x)
            for a, b, c, x in zip(first.tolist(), last.tolist(), best.tolist(), score.tolist(), strict=True)
        ]
        order = np.lexsort((last, first, -score))
        hits = [hits[i] for i in order]
        evidence = self._evidence(
            query, rows[order[0]], order, score, measured, tokens, dense[0][1] if dense else 0.0
        )
        if about and self.title[rows[order[0]]]:
            evidence = replace(evidence, about=True)
        return hits, evidence

    def _evidence(
        self, query: Query, first: int, order: np.ndarray, score: np.ndarray,
        measured: tuple[np.ndarray, ...], tokens: np.ndarray, top: float,
    ) -> Evidence:  # fmt: skip
        """How well the best windows meet the question (see Evidence), from the pool's arrays in
        their ranked `order`; `first` is the best one's window row."""
        best = order[:EVIDENCE_WINDOWS]
        covered = tokens[best].max(axis=0)  # each question token's best cosine in the best windows
        words = query.words if query.words is not None else np.arange(len(covered))
        per_word = np.sort(np.bincount(words, covered) / np.maximum(np.bincount(words), 1))
        agree = np.mean([int(np.sum(x > x[order[0]])) < EVIDENCE_WINDOWS for x in measured])
        margin = float(score[order[0]] - score[order[min(EVIDENCE_WINDOWS, len(order) - 1)]])
        p = self.passages
        said = " ".join(x.text for x in p[self.first[first] : self.last[first] + 1])
        missed = float(type_missed(query.text, said))
        if not len(per_word):  # no content token at all ("😀🤔"): nothing of the question is met
            per_word = covered = np.zeros(1)
        return Evidence(float(top), self.coverage(query.text), float(per_word[0]), float(per_word[:2].mean()),
                        float(covered.mean()), margin, float(agree), missed,
                        float(score[order[0]]))  # fmt: skip

    def coverage(self, question: str) -> float:
        """Share of the question's words (weighted by rarity) that the corpus contains at all."""
        toks = set(tokenize(question))
        if not toks:
            return 0.0
        rarity = self.rarity
        known = [rarity.vocab.get(w) for w in toks]
        unseen_idf = math.log1p((rarity.docs + 0.5) / 0.5)
        total = sum(rarity.idf[j] if j is not None else unseen_idf for j in known)
        found = sum(rarity.idf[j] for j in known if j is not None)
        return float(found / total) if total > 0 else 0.0


ECHO_SHARE = 0.9  # an interviewer's window holding this share of a question's words asks it
ECHO_MIN_WORDS = 4  # shorter questions ("Why?") are in too many windows to be echoes of any


@lru_cache(maxsize=1 << 14)
def _words(text: str) -> frozenset[str]:
    """`tokenize`d, as a set: the interviewer's windows are read again by every question."""
    return frozenset(tokenize(text))


def without_echo(hits: Sequence[Hit], passages: Sequence[Passage], question: str) -> list[Hit]:
    """Drop the interviewer's windows that ask this very question: someone who asks what the
    interviewer asked wants the reply, not their own question said back."""
    words = set(tokenize(question))
    if len(words) < ECHO_MIN_WORDS:
        return list(hits)

    def echoes(h: Hit) -> bool:
        if passages[h.first].role != QUESTION:
            return False
        said = _words(" ".join(p.text for p in passages[h.first : h.last + 1]))
        return len(words & said) >= ECHO_SHARE * len(words)

    return [h for h in hits if not echoes(h)]


def demote_seen(hits: Sequence[Hit], shown: Hit) -> list[Hit]:
    """A follow-up asks for more: windows sharing a sentence with the quote just shown go lower."""
    seen = set(shown.rows())
    out = [Hit(h.first, h.last, h.best, h.score - SEEN_PENALTY * bool(seen & set(h.rows()))) for h in hits]
    return sorted(out, key=lambda h: (-h.score, h.first, h.last))
