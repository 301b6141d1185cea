"""Transcripts + model + stored index -> an object that answers questions.

The CLI, the HTTP routes and the chat all go through `Engine.ask`.
"""

from __future__ import annotations

import json
import os
import sys
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from embeddings import index as store
from embeddings.model import Embedder
from qa import answer as answers
from qa.conversation import resolve
from qa.retrieve import Hit, Query, Ranker, content_tokens, demote_seen, window_text, windows
from qa.transcript import Transcript, TranscriptError, find_transcripts, parse, read_text

PROJECT = Path(__file__).resolve().parent.parent
DEFAULT_DATA = PROJECT / "data"
DEFAULT_INDEX_DIR = Path(os.environ.get("QA_INDEX_DIR", ".index"))
CALIBRATION = Path(__file__).with_name("calibration.json")
MAX_QUESTION_CHARS = 2000
MAX_K = 20
FALLBACK_CALIBRATION = {"alpha": 0.3, "threshold": 0.55}


class QuestionError(ValueError):
    """A question that cannot be asked; `status` is the HTTP status that fits."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def clean_question(question: object) -> str:
    """The question as text: control characters become spaces, lone surrogates are dropped."""
    if not isinstance(question, str):
        raise QuestionError("question must be text")
    question = "".join(
        " " if unicodedata.category(c) in ("Cc", "Cs") or c == "\ufffd" else c for c in question
    )
    question = " ".join(question.split())
    if not question:
        raise QuestionError("question is empty: type a question about the interview")
    if len(question) > MAX_QUESTION_CHARS:
        raise QuestionError(
            f"question is {len(question)} characters long; the limit is {MAX_QUESTION_CHARS}", 413
        )
    return question


def check_k(k: object) -> int:
    try:
        value = int(str(k).strip())
    except ValueError:
        raise QuestionError(f"k must be a whole number from 1 to {MAX_K}") from None
    if not 1 <= value <= MAX_K:
        raise QuestionError(f"k must be a whole number from 1 to {MAX_K}, not {value}")
    return value


def display_path(path: Path) -> str:
    """Relative to the working directory when inside it, else absolute: what users can open."""
    absolute = path.resolve()
    try:
        return str(absolute.relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(absolute)


def load_calibration(model_name: str) -> dict[str, float] | None:
    try:
        table = json.loads(CALIBRATION.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return table.get(model_name)


@dataclass
class Report:
    """What opening the index did, file by file (the keys of `python -m qa index --json`)."""

    added: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    skipped: list[dict[str, str]] = field(default_factory=list)
    embedded_passages: int = 0
    passages: int = 0
    saved: bool = True


def load_transcripts(
    data: Path, log: Callable[[str], None]
) -> tuple[dict[str, Transcript], list[dict[str, str]]]:
    """Transcripts keyed by their path inside `data`; broken files are skipped and reported."""
    data = Path(data)
    paths = find_transcripts(data)
    root = data if data.is_dir() else data.parent
    found, skipped = {}, []
    for path in paths:
        key = path.relative_to(root).as_posix()
        try:
            found[key] = parse(read_text(path), display_path(path))
        except TranscriptError as e:
            if data.is_file():
                raise
            skipped.append({"file": display_path(path), "error": str(e)})
            log(f"warning: skipped {e}")
    if not found:
        raise TranscriptError(f"{data}: no readable transcripts (.txt or .md) found")
    return found, skipped


class Engine:
    def __init__(
        self,
        data: Path = DEFAULT_DATA,
        index_dir: Path = DEFAULT_INDEX_DIR,
        model: str | None = None,
        progress: bool = True,
        log: Callable[[str], None] = lambda m: print(m, file=sys.stderr),
        embedder: Embedder | None = None,
        backend: Callable[[Path, dict[str, str]], store.Backend] = store.FaissFolder,
    ) -> None:
        self.embedder = embedder or Embedder(model)
        self.log = log
        self.transcripts, skipped = load_transcripts(Path(data), log)
        self.report = Report(skipped=skipped)
        self.backend = backend(Path(index_dir), self.embedder.identity)
        self._open_index(progress)
        self.passages = [p for t in self.transcripts.values() for p in t.passages]
        self.texts = {t.source: t.text for t in self.transcripts.values()}
        self.titles = {t.source: t.title for t in self.transcripts.values()}
        self.ranker = Ranker(self.passages, self.vectors, self.tokens, self.token_counts, self.index)
        self.calibration = load_calibration(self.embedder.name)
        if self.calibration is None:
            log(f"warning: no refusal calibration for {self.embedder.name}; using a generic one "
                "(run `python -m qa calibrate`)")  # fmt: skip
            self.calibration = FALLBACK_CALIBRATION

    def _open_index(self, progress: bool) -> None:
        """Reuse the stored vectors of unchanged transcripts; embed only new or changed ones."""
        model = self.embedder.identity
        try:
            old = self.backend.load()
        except store.IndexUnusable as e:
            if self.backend.has_files():
                self.log(f"warning: rebuilding the index: {e}")
            old = None
        old_parts = old.parts() if old else {}
        hashes = {k: store.sha256_bytes(t.text.encode("utf-8")) for k, t in self.transcripts.items()}
        spans = {k: windows(t.passages) for k, t in self.transcripts.items()}
        report = self.report
        todo = []
        for key, t in self.transcripts.items():
            entry = old.files.get(key) if old else None
            if entry and (entry.sha256, entry.rows, entry.passages) == (hashes[key], len(spans[key]),
                                                                       len(t.passages)):  # fmt: skip
                report.unchanged.append(key)
            else:
                (report.changed if entry else report.added).append(key)
                todo.append(key)
        report.removed = sorted(set(old.files) - set(self.transcripts)) if old else []
        texts = [window_text(self.transcripts[k].passages, w) for k in todo for w in spans[k]]
        if texts and progress:
            self.log(f"embedding {len(texts)} passages from {len(todo)} transcript(s)…")
        fresh, fresh_tokens, _ = self.embedder.encode_tokens(texts, progress=progress and len(texts) > 64)
        dim = fresh.shape[1] if len(texts) else (old.dim if old else self.embedder.dim)
        vectors, tokens, counts, files, offset = [], [], [], {}, 0
        for key, t in self.transcripts.items():
            n = len(spans[key])
            if key in todo:
                vectors.append(fresh[offset : offset + n])
                singles = fresh_tokens[offset : offset + len(t.passages)]  # windows of one sentence
                tokens += singles
                counts.append(np.array([len(x) for x in singles], dtype=np.int32))
                offset += n
            else:
                v, tok, c = old_parts[key]
                vectors.append(v)
                tokens.append(tok)
                counts.append(c)
            files[key] = store.FileEntry(hashes[key], n, len(t.passages))
        self.vectors = np.concatenate(vectors) if vectors else np.zeros((0, dim), np.float32)
        self.tokens = np.concatenate(tokens) if tokens else np.zeros((0, dim), np.float16)
        self.token_counts = np.concatenate(counts) if counts else np.zeros(0, np.int32)
        self.index = self.backend.searchable(self.vectors)
        report.embedded_passages = len(texts)
        report.passages = len(self.vectors)
        if todo or report.removed or old is None:
            try:
                self.backend.save(
                    store.Stored(model, dim, files, self.vectors, self.tokens, self.token_counts)
                )
            except OSError as e:
                report.saved = False
                self.log(f"warning: cannot write the index to {self.backend} ({e.strerror or e}); "
                         "serving from memory, it will be rebuilt on the next start")  # fmt: skip

    @property
    def model_name(self) -> str:
        return self.embedder.name

    @property
    def speakers(self) -> list[str]:
        return sorted({s for t in self.transcripts.values() for s in t.speakers})

    def query(self, text: str) -> Query:
        vectors, tokens, pieces = self.embedder.encode_tokens([text])
        return Query(text, vectors[0], content_tokens(tokens[0].astype(np.float32), pieces[0]))

    def rank(self, question: str, allowed: np.ndarray | None = None) -> tuple[list[Hit], float]:
        """Ranked windows and the confidence that the transcripts address the question."""
        query = self.query(question)
        hits, top = self.ranker.search(query, allowed)
        return hits, self.ranker.confidence(query, self.calibration["alpha"], top=top)

    def ask(
        self, question: object, k: object = 3, source: str | None = None,
        speaker: str | None = None, history: Sequence[object] = (),
    ) -> answers.Answer:  # fmt: skip
        """Verbatim quotes answering the question, or a refusal. Raises QuestionError.

        `history` holds the user's earlier questions, oldest first: a follow-up is searched
        together with the question it follows."""
        question = clean_question(question)
        k = check_k(k)
        allowed = self._filter(source, speaker)
        earlier = [clean_question(h) for h in history if isinstance(h, str) and h.strip()]
        query = resolve(question, earlier)
        hits, confidence = self.rank(query, allowed)
        if query != question:  # a follow-up: its asker has just read the answer to the one before
            shown, _ = self.rank(resolve(earlier[-1], earlier[:-1]), allowed)
            hits = demote_seen(hits, shown[0]) if shown else hits
        answered = bool(hits) and confidence >= self.calibration["threshold"]
        return answers.build(
            question, hits, self.passages, self.texts, self.titles, k, answered, confidence,
            self.model_name, query,
        )  # fmt: skip

    def _filter(self, source: str | None, speaker: str | None) -> np.ndarray | None:
        if not source and not speaker:
            return None
        allowed = np.ones(len(self.passages), dtype=bool)
        if source:
            names = {t.source for t in self.transcripts.values()}
            match = {t.source for k, t in self.transcripts.items() if source in (k, t.source, t.title)}
            if not match:
                raise QuestionError(f"unknown source {source!r}; loaded: {', '.join(sorted(names))}")
            allowed &= np.array([p.source in match for p in self.passages])
        if speaker:
            if speaker not in self.speakers:
                raise QuestionError(f"unknown speaker {speaker!r}; known: {', '.join(self.speakers)}")
            allowed &= np.array([p.speaker == speaker for p in self.passages])
        return allowed
