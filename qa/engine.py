"""Transcripts + model + stored index -> an object that answers questions.

The CLI, the HTTP routes and the chat all go through `Engine.ask`.
"""

from __future__ import annotations

import ctypes
import json
import os
import re
import stat
import sys
import threading
import time
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from embeddings import index as store
from embeddings.model import Embedder
from qa.answer import Answer, build
from qa.conversation import searched_as
from qa.retrieve import (
    FEATURES,
    Evidence,
    Hit,
    Query,
    Ranker,
    content_tokens,
    content_words,
    demote_seen,
    lexical_doc,
    verdict,
    window_text,
    windows,
    without_echo,
)
from qa.transcript import SUFFIXES, Transcript, TranscriptError, parse, read_text

PROJECT = Path(__file__).resolve().parent.parent
DEFAULT_DATA = PROJECT / "data"


def default_index_dir() -> Path:
    """Where the index is kept unless --index-dir says otherwise: $QA_INDEX_DIR, read when asked."""
    return Path(os.environ.get("QA_INDEX_DIR", ".index"))


CALIBRATION = Path(__file__).with_name("calibration.json")
MAX_QUESTION_CHARS = 2000
MAX_K = 20
MAX_HISTORY = 20  # earlier questions read: a follow-up leans on the last few, and each costs a check
# For a model never calibrated: answer when the best cosine plus 0.3 x word coverage reaches 0.55,
# not in the interview under 0.4 (retrieve.on_topic).
FALLBACK_CALIBRATION = {"mean": [0.0] * len(FEATURES), "scale": [1.0] * len(FEATURES),
                        "coef": [10.0, 3.0] + [0.0] * (len(FEATURES) - 2),
                        "intercept": -5.5, "answer": 0.5, "floor": 0.4}  # fmt: skip


def one_blas_thread() -> None:
    """numpy's BLAS on one thread, in this whole process: a question's products are small (its
    tokens against a few thousand token vectors), and a second thread costs more to wake and
    join than it saves, more still while torch's threads hold the cores (README, "Speed").
    Each product gives the same numbers on one thread as on two."""
    from threadpoolctl import threadpool_limits

    threadpool_limits(1, user_api="blas")


class QuestionError(ValueError):
    """A question that cannot be asked; `status` is the HTTP status that fits."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def clean_question(question: object) -> str:
    """The question as text: control characters become spaces, lone surrogates are dropped."""
    if not isinstance(question, str):
        raise QuestionError("question must be text")
    if len(question) > 4 * MAX_QUESTION_CHARS:  # refused before any work that grows with its length
        raise QuestionError(
            f"question is {len(question)} characters long; the limit is {MAX_QUESTION_CHARS}", 413
        )
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


def question_error(question: object, error: object) -> dict[str, str]:
    """A question that could not be answered, in the one shape every face returns it: the
    CLI's JSON lines, /api/ask, the MCP tool and the feedback recheck."""
    text = question if isinstance(question, str) else "" if question is None else str(question)
    return {"question": text[:MAX_QUESTION_CHARS], "error": str(error)}


def check_k(k: object) -> int:
    try:
        value = int(str(k).strip())
    except ValueError:
        raise QuestionError(f"k must be a whole number from 1 to {MAX_K}") from None
    if not 1 <= value <= MAX_K:
        raise QuestionError(f"k must be a whole number from 1 to {MAX_K}, not {value}")
    return value


def file_label(name: str) -> str:
    """A file name as safe, printable text, reversibly: a byte that is not UTF-8 (which Python
    reads as a lone surrogate) and a control character become `\\xNN`, a backslash `\\\\`.
    So one odd name can neither break JSON or a page nor be confused with another."""
    out = []
    for c in name:
        if "\udc80" <= c <= "\udcff":
            out.append(f"\\x{ord(c) - 0xDC00:02x}")
        elif c == "\\":
            out.append("\\\\")
        elif unicodedata.category(c) in ("Cc", "Cs"):
            out.append(f"\\x{ord(c):02x}" if ord(c) < 256 else f"\\u{ord(c):04x}")
        else:
            out.append(c)
    return "".join(out)


def display_path(path: Path) -> str:
    """Relative to the working directory when inside it, else absolute: what users can open."""
    absolute = Path(os.path.abspath(path))  # the name given, not where its links lead
    try:
        shown = str(absolute.relative_to(Path.cwd().resolve()))
    except ValueError:
        shown = str(absolute)
    return file_label(shown)


def source_name(key: str, path: Path) -> str:
    """How a transcript is named to visitors (quotes' `source`, citations, errors): its path
    from the working directory when inside it, else its key (`uploads/NAME`, or its path inside
    the data folder). Never an absolute path: that would tell every visitor the server's layout."""
    shown = display_path(path)
    return key if os.path.isabs(shown) else shown


LOCAL_CALIBRATION = "calibration.json"  # in the index folder: `calibrate --write` puts it there


def load_calibration(model_name: str, index_dir: Path | None = None) -> dict[str, float] | None:
    """The model's refusal calibration: the one fitted here (INDEX_DIR/calibration.json) if
    any, else the one shipped with the code."""
    for path in ([Path(index_dir) / LOCAL_CALIBRATION] if index_dir else []) + [CALIBRATION]:
        try:
            fit = json.loads(path.read_text(encoding="utf-8")).get(model_name)
        except (OSError, ValueError, AttributeError):
            continue
        # An older file (one threshold, or other evidence) is not a fit of this verdict.
        if fit and "coef" in fit and fit.get("features") == list(FEATURES):
            return fit
    return None


Stamp = tuple[int, int, int, int]  # (mtime ns, ctime ns, size, inode): a cheap sign that a file changed


def stamp(path: Path) -> Stamp | None:
    """ctime is in it because mtime can be set back by anyone who writes the file (`touch -d`,
    `cp -p`, an editor that keeps times): the kernel moves ctime on every write and no one can
    set it back, so a same-size edit with its mtime restored is still seen."""
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_mtime_ns, st.st_ctime_ns, st.st_size, st.st_ino


def find_transcripts(data: Path) -> tuple[list[Path], list[tuple[Path, str]]]:
    """The transcript files under a path (the file itself, or every supported file below a
    folder), and the candidates passed over with why: a FIFO, socket or device (which would
    block or never end), a broken link or a link loop. Links to files elsewhere are followed:
    the data folder is the user's own (README, "Files")."""
    data = Path(data)
    if data.is_file():
        return [data], []
    if not data.is_dir():
        raise TranscriptError(
            f"{display_path(data)}: no such file or folder; pass --data with a transcript or folder"
        )
    found, passed = [], []
    for p in sorted(data.rglob("*")):
        if p.suffix.lower() not in SUFFIXES or p.name.startswith("."):
            continue
        try:
            mode = p.stat().st_mode
        except OSError as e:
            if p.is_symlink():
                passed.append((p, f"a link that leads nowhere ({e.strerror or e})"))
            continue
        if stat.S_ISREG(mode):
            found.append(p)
        elif not stat.S_ISDIR(mode):
            passed.append((p, "not a regular file (a pipe, socket or device)"))
    return found, passed


def give_back_freed_memory() -> None:
    """Return to the system the heap that parsing and syncing freed. glibc keeps freed memory for
    reuse, so a process that read a million windows would go on holding their temporary lists
    as its own (a fifth of its anonymous memory at 214k windows). Nothing where there is no glibc."""
    try:
        ctypes.CDLL(None).malloc_trim(0)
    except (OSError, AttributeError):
        pass


UPLOADS_KEY = "uploads/"  # what an uploaded file's key starts with
REJECTED = "rejected"  # the uploads folder's subfolder for files that could not be indexed
INDEXING = ".indexing"  # names the uploads being embedded; if it outlives the process, they killed it


def scan(data: Path, uploads: Path | None = None) -> tuple[dict[str, Path], list[dict[str, str]]]:
    """The transcript files under `data` by key (their path inside it, as a `file_label`), and
    what was passed over with the reason.

    Files under `uploads` (the page's own folder; missing is empty) are keyed `uploads/NAME`.
    That folder is left out of the data scan if it lies inside it, so no file is read twice;
    an upload whose key a data file already has is passed over, as the data folder is the user's."""
    data, uploads = Path(data), Path(uploads) if uploads is not None else None
    paths, passed = find_transcripts(data)
    root = data if data.is_dir() else data.parent
    inside = Path(os.path.abspath(uploads)) if uploads is not None else None
    found = {
        file_label(p.relative_to(root).as_posix()): p
        for p in paths
        if inside is None or not Path(os.path.abspath(p)).is_relative_to(inside)
    }
    if uploads is not None and uploads.is_dir():
        uploaded, also = find_transcripts(uploads)
        passed += also
        for p in uploaded:
            if p.relative_to(uploads).parts[0] == REJECTED:
                continue
            key = UPLOADS_KEY + file_label(p.relative_to(uploads).as_posix())
            if key in found:
                passed.append((p, f"a file in the data folder has the same name, {key}; rename one"))
            else:
                found[key] = p
    return found, [{"file": display_path(p), "error": why} for p, why in passed]


_CONTENT_HASH = re.compile(r" [0-9a-f]{8}$")  # qa.uploads.safe_name ends a stored name with one


def upload_titled(t: Transcript) -> Transcript:
    """An added file with no title line is titled by its name, but the name it is stored under
    ends in its content's hash (qa/uploads.py), which means nothing to a reader."""
    if t.title != Path(t.source).stem.replace("_", " ").replace("-", " "):
        return t
    return replace(t, title=_CONTENT_HASH.sub("", t.title) or t.title)


def load_transcripts(
    data: Path,
    log: Callable[[str], None],
    known: dict[str, tuple[Stamp, Transcript]] | None = None,
    uploads: Path | None = None,
    leave: Callable[[str, Path], bool] = lambda key, path: False,
) -> tuple[dict[str, Path], dict[str, Stamp | None], dict[str, Transcript], list[dict[str, str]]]:
    """Transcripts keyed by their path inside `data` (or `uploads/NAME`, see `scan`), with each
    file's path and stamp; broken files are skipped and reported. A file whose stamp is in
    `known` is not read again; one that `leave` names is left out, unread."""
    data = Path(data)
    paths, skipped = scan(data, uploads)
    paths = {key: path for key, path in paths.items() if not leave(key, path)}
    for s in skipped:
        log(f"warning: skipped {s['file']}: {s['error']}")
    stamps, found = {}, {}
    for key, path in paths.items():
        stamps[key] = stamp(path)
        if known and key in known and known[key][0] == stamps[key] and stamps[key] is not None:
            found[key] = known[key][1]
            continue
        try:
            found[key] = parse(read_text(path, source_name(key, path)), source_name(key, path))
            if key.startswith(UPLOADS_KEY):
                found[key] = upload_titled(found[key])
        except TranscriptError as e:
            if path == data:  # the one file asked for: nothing to serve without it
                raise
            skipped.append({"file": display_path(path), "error": str(e)})
            log(f"warning: skipped {e}")
    if not found:
        if paths or skipped:
            raise TranscriptError(
                f"{display_path(data)}: no readable transcripts; {len(skipped)} file(s) skipped, "
                "see the warnings above"
            )
        raise TranscriptError(
            f"{display_path(data)}: no transcripts found (.{', .'.join(s[1:] for s in SUFFIXES)})"
        )
    return paths, stamps, found, skipped


MAX_UPLOAD_WINDOWS = 5_000  # per upload: while embedded, each holds ~60 KB; ~50 are embedded a second


def upload_limit(name: str, default: int) -> int:
    """A limit on uploads from the environment ($QA_UPLOAD_MAX_WINDOWS, ...), read when needed."""
    try:
        return int(os.environ.get(name, default))
    except ValueError:
        return default


class OverBudget(RuntimeError):
    """Embedding uploads took longer than their budget."""


class Budgeted:
    """An embedder that encodes in chunks and gives up past a deadline: what an upload may cost
    in time grows with its size, and a chunk at a time bounds the model's working memory."""

    CHUNK = 256

    def __init__(self, embedder: Embedder, seconds: float) -> None:
        self.embedder, self.seconds = embedder, seconds
        self.dim = embedder.dim
        self.deadline = time.monotonic() + seconds

    def encode_tokens(self, texts: list[str], batch_size: int = 64, progress: bool = False):
        vectors, tokens, pieces = [], [], []
        for i in range(0, len(texts), self.CHUNK):
            if time.monotonic() > self.deadline:
                raise OverBudget(f"not indexed within its budget of {self.seconds:.0f} s")
            v, t, p = self.embedder.encode_tokens(texts[i : i + self.CHUNK], batch_size)
            vectors.append(v)
            tokens += t
            pieces += p
        if not vectors:
            return self.embedder.encode_tokens([], batch_size)
        return np.concatenate(vectors), tokens, pieces


def _indexed(old: store.Stored | None, key: str, t: Transcript) -> bool:
    entry = old.files.get(key) if old else None
    return entry is not None and entry.sha256 == store.sha256_bytes(t.text.encode("utf-8"))


def _stored_as(old: store.Stored | None, key: str, path: Path) -> bool:
    """Whether the file's bytes are what the index holds for `key` (UTF-8 text is its bytes),
    told without parsing it."""
    entry = old.files.get(key) if old else None
    try:
        return entry is not None and entry.sha256 == store.sha256_bytes(path.read_bytes())
    except OSError:
        return False


@dataclass(frozen=True)
class Loaded:
    """One consistent view of the transcripts and their index. A request reads one view from
    start to end; a refresh builds a new one and swaps it in whole."""

    paths: dict[str, Path]
    stamps: dict[str, Stamp | None]
    transcripts: dict[str, Transcript]
    stored: store.Stored
    ranker: Ranker
    report: store.Report
    index: object
    texts: dict[str, str]  # by source, as quotes name it
    titles: dict[str, str]
    keys: dict[str, str]  # source -> key

    @property
    def passages(self) -> list:
        return self.ranker.passages


class Engine:
    def __init__(
        self,
        data: Path = DEFAULT_DATA,
        index_dir: Path | None = None,
        model: str | None = None,
        progress: bool = True,
        log: Callable[[str], None] = lambda m: print(m, file=sys.stderr),
        embedder: Embedder | None = None,
        backend: Callable[[Path, dict[str, str]], store.Backend] = store.FaissFolder,
        uploads: Path | None = None,
        defer_uploads: bool = False,
    ) -> None:
        """`defer_uploads`: uploads not indexed yet are left for the first `refresh`, so that an
        app serves what it has before it embeds what visitors sent."""
        one_blas_thread()
        self.embedder = embedder or Embedder(model)
        self.log = log
        self.data = Path(data)
        self.uploads = Path(uploads) if uploads is not None else None  # transcripts added from the page
        self.rejected: dict[str, str] = {}  # uploads set aside this run, by file name: why
        index_dir = Path(index_dir or default_index_dir())
        self.backend = backend(index_dir, self.embedder.identity)
        self._lock = threading.Lock()  # one refresh at a time
        self.pending: list[str] = []  # files changed on disk and not yet re-indexed
        self._reject_unfinished()
        self.state = self._load(None, progress, defer_uploads)
        give_back_freed_memory()
        self.calibration = load_calibration(self.embedder.name, index_dir)
        if self.calibration is None:
            log(f"warning: no refusal calibration for {self.embedder.name}; using a generic one "
                "(run `python -m qa calibrate`)")  # fmt: skip
            self.calibration = FALLBACK_CALIBRATION

    # The current view's parts, for readers that take them one at a time.
    transcripts = property(lambda self: self.state.transcripts)
    passages = property(lambda self: self.state.passages)
    ranker = property(lambda self: self.state.ranker)
    report = property(lambda self: self.state.report)
    index = property(lambda self: self.state.index)
    vectors = property(lambda self: self.state.stored.vectors)
    tokens = property(lambda self: self.state.stored.tokens)
    token_counts = property(lambda self: self.state.stored.token_counts)
    texts = property(lambda self: self.state.texts)
    titles = property(lambda self: self.state.titles)

    def _load(self, previous: Loaded | None, progress: bool, defer_uploads: bool = False) -> Loaded:
        """Read the transcripts (again only those whose file changed) and sync their vectors.
        An upload that cannot be indexed within its budget is set aside, and the rest served."""
        known = {k: (previous.stamps[k], t) for k, t in previous.transcripts.items()} if previous else None
        old = previous.stored if previous else self._stored()

        def unindexed(key: str, path: Path) -> bool:  # left for the first refresh, unread
            return defer_uploads and key.startswith(UPLOADS_KEY) and not _stored_as(old, key, path)

        try:
            paths, stamps, transcripts, skipped = load_transcripts(
                self.data, self.log, known, self.uploads, unindexed
            )
        except TranscriptError:
            if not defer_uploads:
                raise
            return self._load(previous, progress)  # nothing but uploads to serve: index them now
        new = [k for k, t in transcripts.items() if k.startswith(UPLOADS_KEY) and not _indexed(old, k, t)]
        for key in new:
            rows = len(windows(transcripts[key].passages))
            most = upload_limit("QA_UPLOAD_MAX_WINDOWS", MAX_UPLOAD_WINDOWS)
            if rows > most:
                self._set_aside(paths[key], f"{rows:,} windows to index, over the limit of {most:,} per file")
                return self._load(previous, progress, defer_uploads)
        try:
            stored, report = self._sync(
                transcripts, old, progress, unsaved=bool(previous) and not previous.report.saved, uploads=new
            )
        except OverBudget as e:
            for key in new:
                self._set_aside(paths[key], str(e))
            return self._load(previous, progress, defer_uploads)
        report.skipped = skipped
        passages = [p for t in transcripts.values() for p in t.passages]
        # A view the backend could not store is searched in memory: the backend lacks its files.
        signals = self.backend.signals(stored) if report.saved else None
        if signals is not None:  # the backend computes them (Qdrant Edge): no arrays here
            index = signals
            ranker = Ranker(passages, signals=signals)
        else:
            index = self.backend.searchable(stored) if report.saved else store.to_faiss(stored.vectors)
            ranker = Ranker(passages, stored.vectors, stored.tokens, stored.token_counts, index)
        texts = {t.source: t.text for t in transcripts.values()}
        titles = {t.source: t.title for t in transcripts.values()}
        keys = {t.source: k for k, t in transcripts.items()}
        return Loaded(paths, stamps, transcripts, stored, ranker, report, index, texts, titles, keys)

    def _set_aside(self, path: Path, why: str) -> None:
        """Move an upload that cannot be indexed to uploads/rejected/, so that it never blocks
        a start again; its reason is logged and kept for the page."""
        assert self.uploads is not None
        aside = self.uploads / REJECTED / path.name
        try:
            aside.parent.mkdir(exist_ok=True)
            os.replace(path, aside)
        except OSError:
            path.unlink()  # an OSError here stops the load: better than indexing it again
        self.rejected[path.name] = why
        self.log(f"warning: set aside uploads/{file_label(path.name)} in {REJECTED}/: {why}")

    def _reject_unfinished(self) -> None:
        """Uploads named by a marker that outlived its process stopped the app while they were
        embedded (out of memory, or killed): set them aside instead of trying again."""
        marker = self.uploads / INDEXING if self.uploads else None
        if marker is None or not marker.exists():
            return
        for name in marker.read_text(encoding="utf-8", errors="replace").splitlines():
            path = self.uploads / name
            if name and "/" not in name and path.is_file():
                self._set_aside(path, "indexing it stopped the app last time (out of memory, or killed)")
        marker.unlink(missing_ok=True)

    def stopping(self) -> None:
        """The app is being stopped on purpose: an upload being embedded now did not kill it,
        so the next start tries it again instead of setting it aside."""
        if self.uploads is not None:
            (self.uploads / INDEXING).unlink(missing_ok=True)

    def _stored(self) -> store.Stored | None:
        try:
            return self.backend.load()
        except store.IndexUnusable as e:
            if self.backend.has_files():
                self.log(f"warning: rebuilding the index: {e}")
            return None

    def _sync(
        self, transcripts: dict[str, Transcript], old: store.Stored | None, progress: bool, unsaved: bool,
        uploads: Sequence[str] = (),
    ):  # fmt: skip
        """The index of these transcripts: only new or changed ones are embedded (embeddings/index.py).
        When `uploads` are among them, embedding runs in chunks against a deadline that grows with
        their size (OverBudget past it), and a marker names them until it is done."""
        if uploads:
            rows = sum(len(windows(transcripts[k].passages)) for k in uploads)
            seconds = upload_limit("QA_UPLOAD_BASE_SECONDS", 60) + rows / upload_limit(
                "QA_UPLOAD_MIN_RATE", 10
            )
            marker = self.uploads / INDEXING
            try:
                marker.write_text("\n".join(k[len(UPLOADS_KEY) :] for k in uploads), encoding="utf-8")
            except OSError as e:
                self.log(f"warning: cannot write {marker} ({e.strerror or e})")
            try:
                return self._sync_with(transcripts, old, progress, unsaved, Budgeted(self.embedder, seconds))
            finally:
                marker.unlink(missing_ok=True)
        return self._sync_with(transcripts, old, progress, unsaved, self.embedder)

    def _sync_with(
        self, transcripts: dict[str, Transcript], old: store.Stored | None, progress: bool, unsaved: bool,
        embedder: store.Embeds,
    ):  # fmt: skip
        sources = {}
        for key, t in transcripts.items():
            spans = windows(t.passages)
            sources[key] = store.Source(
                store.sha256_bytes(t.text.encode("utf-8")),
                lambda t=t, spans=spans: [window_text(t.passages, w) for w in spans],
                len(spans), len(t.passages),
                lambda t=t, spans=spans: [(t.passages[w.first].start, t.passages[w.last].end) for w in spans],
                lambda t=t, spans=spans: [lexical_doc(t.passages, w) for w in spans],
            )  # fmt: skip
        return store.sync(
            self.backend, old, sources, embedder, self.embedder.identity, self.log, progress, unsaved
        )

    def changed(self, state: Loaded | None = None) -> list[str]:
        """Files added, removed or changed on disk since `state` (default: the current view)."""
        state = state or self.state
        try:
            paths, _ = scan(self.data, self.uploads)
        except TranscriptError:
            return sorted(state.stamps)
        keys = set(paths) | set(state.stamps)
        return sorted(k for k in keys if k not in paths or state.stamps.get(k) != stamp(paths[k]))

    def refresh(self) -> list[str]:
        """Re-read the files that changed on disk and re-embed only them; the new view is
        swapped in whole when it is ready. Returns the keys that changed."""
        with self._lock:
            changed = self.changed()
            if changed:
                self.pending = changed
                self.log(f"re-indexing: {', '.join(changed)} changed on disk")
                self.state = self._load(self.state, progress=False)
                give_back_freed_memory()
                self.pending = []
            return changed

    def problem(self) -> str | None:
        """Why questions cannot be answered now (the index server is unreachable), or None."""
        return self.backend.problem()

    @property
    def model_name(self) -> str:
        return self.embedder.name

    @property
    def speakers(self) -> list[str]:
        return sorted({s for t in self.transcripts.values() for s in t.speakers})

    def query(self, text: str) -> Query:
        vectors, tokens, pieces = self.embedder.encode_tokens([text])
        kept = content_tokens(tokens[0].astype(np.float32), pieces[0])
        return Query(text, vectors[0], kept, content_words(pieces[0]))

    def rank(
        self, question: str, allowed: np.ndarray | None = None, state: Loaded | None = None
    ) -> tuple[list[Hit], Evidence]:
        """Ranked windows and the evidence that the transcripts answer the question."""
        return (state or self.state).ranker.search(self.query(question), allowed)

    def ask(
        self, question: object, k: object = 3, source: str | None = None,
        speaker: str | None = None, history: Sequence[object] = (),
    ) -> Answer:  # fmt: skip
        """Verbatim quotes answering the question, or a refusal. Raises QuestionError.

        `history` holds the user's earlier questions, oldest first: a follow-up is searched
        together with the question it follows."""
        return self.ask_with_evidence(question, k, source, speaker, history)[0]

    def ask_with_evidence(
        self, question: object, k: object = 3, source: str | None = None,
        speaker: str | None = None, history: Sequence[object] = (),
    ) -> tuple[Answer, Evidence]:  # fmt: skip
        """`ask`, and the evidence its verdict was read from (for calibration and eval)."""
        state = self.state
        question = clean_question(question)
        k = check_k(k)
        allowed = self._filter(state, source, speaker)
        recent = list(history)[-MAX_HISTORY:]
        earlier = [clean_question(h) for h in recent if isinstance(h, str) and h.strip()]
        query = searched_as(question, earlier)
        try:
            hits, evidence = self.rank(query, allowed, state)
            if query != question:  # a follow-up: its asker has just read the answer to the one before
                shown, _ = self.rank(searched_as(earlier[-1], earlier[:-1]), allowed, state)
                hits = demote_seen(hits, shown[0]) if shown else hits
        except ConnectionError as e:  # the index server (embeddings/qdrant.py) is down
            raise QuestionError(f"the index cannot be searched now: {e}; ask again shortly", 503) from None
        hits = without_echo(hits, state.passages, question)
        said, confidence = verdict(evidence, self.calibration)
        answer = build(
            question, hits, state.passages, state.texts, state.titles, k, said if hits else False, confidence,
            self.model_name, query,
        )  # fmt: skip
        self._check_current(answer, state)
        return answer, evidence

    def _check_current(self, answer: Answer, state: Loaded) -> None:
        """Quotes are offsets into the files as they were read: a file changed since then is
        refused (503) until it is re-indexed, never quoted from its old text."""
        quoted = {q.source for q in [*answer.quotes, answer.closest] if q is not None}
        for source in sorted(quoted):
            key = state.keys[source]
            if stamp(state.paths[key]) != state.stamps[key]:
                raise QuestionError(
                    f"{key} changed on disk since it was indexed; it is being re-indexed, "
                    "ask again in a few seconds",
                    503,
                )

    def _filter(self, state: Loaded, source: str | None, speaker: str | None) -> np.ndarray | None:
        if not source and not speaker:
            return None
        passages = state.passages
        allowed = np.ones(len(passages), dtype=bool)
        if source:
            names = {t.source for t in state.transcripts.values()}
            match = {t.source for k, t in state.transcripts.items() if source in (k, t.source, t.title)}
            if not match:
                raise QuestionError(f"unknown source {source!r}; loaded: {', '.join(sorted(names))}")
            allowed &= np.array([p.source in match for p in passages])
        if speaker:
            speakers = sorted({s for t in state.transcripts.values() for s in t.speakers})
            if speaker not in speakers:
                raise QuestionError(f"unknown speaker {speaker!r}; known: {', '.join(speakers)}")
            allowed &= np.array([p.speaker == speaker for p in passages])
        return allowed
