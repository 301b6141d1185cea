"""The FAISS index on disk: one folder per model with the vectors and a manifest.

    <index-dir>/<model-slug>/vectors.faiss   IndexFlatIP over unit vectors, one row per window
    <index-dir>/<model-slug>/tokens.npy      float16 unit token vectors of every passage, in order
    <index-dir>/<model-slug>/token_counts.npy  int32, how many of those each passage has
    <index-dir>/<model-slug>/manifest.json   written last; describes and checksums the rest

The manifest records the format version, the model's identity, the dimension, the row count,
each transcript's sha256 with its rows and passages, and each data file's sha256. A folder that does not match
in every respect is not used: FAISS reads many damaged files without complaint, so the hash is
what tells.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import faiss
import numpy as np

FORMAT_VERSION = 2
INDEX_FILE = "vectors.faiss"
TOKENS_FILE = "tokens.npy"
COUNTS_FILE = "token_counts.npy"
MANIFEST = "manifest.json"


class IndexUnusable(RuntimeError):
    """The stored index cannot be used as it is; the message says why."""


@dataclass
class FileEntry:
    sha256: str
    rows: int  # vectors (windows) of this file, stored contiguously
    passages: int = 0  # its passages, whose token vectors are stored contiguously too


@dataclass
class Stored:
    """Vectors and token vectors with the files they came from, in row order."""

    model: dict[str, str]
    dim: int
    files: dict[str, FileEntry] = field(default_factory=dict)
    vectors: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), dtype=np.float32))
    tokens: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), dtype=np.float16))
    token_counts: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int32))
    held: frozenset[str] = frozenset()  # files whose vectors only the backend holds (Qdrant Edge)

    def parts(self) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """Each file's (vectors, tokens, token_counts), of the files whose arrays are here."""
        out, row, passage, token = {}, 0, 0, 0
        for name, entry in self.files.items():
            if name in self.held:
                continue
            counts = self.token_counts[passage : passage + entry.passages]
            n = int(counts.sum())
            out[name] = (self.vectors[row : row + entry.rows], self.tokens[token : token + n], counts)
            row, passage, token = row + entry.rows, passage + entry.passages, token + n
        return out


def model_folder(index_dir: Path, model: dict[str, str]) -> Path:
    slug = re.sub(r"[^A-Za-z0-9]+", "-", model["name"].split("/")[-1]).strip("-").lower()
    return index_dir / f"{slug or 'model'}-{model['weights_sha256'][:12]}"


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def to_faiss(vectors: np.ndarray) -> faiss.IndexFlatIP:
    index = faiss.IndexFlatIP(vectors.shape[1])
    if len(vectors):
        index.add(np.ascontiguousarray(vectors, dtype=np.float32))
    return index


def load(folder: Path, model: dict[str, str]) -> Stored:
    """The stored vectors, or IndexUnusable saying what does not match."""
    manifest_path = folder / MANIFEST
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise IndexUnusable(f"no index in {folder}") from None
    except (OSError, ValueError) as e:
        raise IndexUnusable(f"{manifest_path} is unreadable ({e})") from None
    try:
        if manifest["format_version"] != FORMAT_VERSION:
            raise IndexUnusable(f"index format {manifest['format_version']}, expected {FORMAT_VERSION}")
        if manifest["model"] != model:
            raise IndexUnusable(
                f"index built with model {manifest['model'].get('name')}, not {model['name']}"
            )
        files = {k: FileEntry(v["sha256"], int(v["rows"]), int(v["passages"]))
                 for k, v in manifest["files"].items()}  # fmt: skip
        dim, count, digest = int(manifest["dim"]), int(manifest["count"]), manifest["index_sha256"]
        token_digests = manifest["tokens_sha256"], manifest["token_counts_sha256"]
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise IndexUnusable(f"{manifest_path} is malformed ({e})") from None
    try:
        data = (folder / INDEX_FILE).read_bytes()
    except OSError as e:
        raise IndexUnusable(f"cannot read {folder / INDEX_FILE} ({e.strerror or e})") from None
    if sha256_bytes(data) != digest:
        raise IndexUnusable(f"{folder / INDEX_FILE} does not match its checksum (damaged)")
    try:
        index = faiss.deserialize_index(np.frombuffer(data, dtype=np.uint8))
    except RuntimeError as e:
        raise IndexUnusable(f"{folder / INDEX_FILE} cannot be read by FAISS ({e})") from None
    if index.ntotal != count or index.d != dim or sum(f.rows for f in files.values()) != count:
        raise IndexUnusable(f"{folder / INDEX_FILE} holds {index.ntotal} rows, manifest says {count}")
    vectors = index.reconstruct_n(0, index.ntotal) if count else np.zeros((0, dim), np.float32)
    tokens, counts = (
        _load_array(folder / name, want)
        for name, want in zip((TOKENS_FILE, COUNTS_FILE), token_digests, strict=True)
    )
    if (
        tokens.ndim != 2
        or tokens.shape[1] != dim
        or counts.ndim != 1
        or len(counts) != sum(f.passages for f in files.values())
        or int(counts.sum()) != len(tokens)
    ):
        raise IndexUnusable(f"{folder / TOKENS_FILE} does not match the manifest")  # fmt: skip
    return Stored(model, dim, files, vectors, tokens, counts)


def _array_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def _load_array(path: Path, digest: str) -> np.ndarray:
    try:
        data = path.read_bytes()
    except OSError as e:
        raise IndexUnusable(f"cannot read {path} ({e.strerror or e})") from None
    if sha256_bytes(data) != digest:
        raise IndexUnusable(f"{path} does not match its checksum (damaged)")
    try:
        return np.load(io.BytesIO(data), allow_pickle=False)
    except (OSError, ValueError) as e:
        raise IndexUnusable(f"{path} cannot be read ({e})") from None


def write_atomic(path: Path, data: bytes) -> None:
    """Temp file in the same folder (".NAME.*.tmp"), fsync, rename, fsync the folder: a reader
    sees the old file or the new one, whole, and a crash leaves at most a temp file."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp's 0600 would hide the file from other local users
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def save(folder: Path, stored: Stored) -> None:
    """Write the index, then the manifest that vouches for it. Raises OSError if not writable."""
    folder.mkdir(parents=True, exist_ok=True)
    for stale in folder.glob(".*.tmp"):  # left by a process killed while writing
        stale.unlink(missing_ok=True)
    data = faiss.serialize_index(to_faiss(stored.vectors)).tobytes()
    tokens = _array_bytes(np.ascontiguousarray(stored.tokens, dtype=np.float16))
    counts = _array_bytes(np.ascontiguousarray(stored.token_counts, dtype=np.int32))
    manifest = {
        "format_version": FORMAT_VERSION,
        "model": stored.model,
        "dim": stored.dim,
        "count": int(len(stored.vectors)),
        "files": {
            k: {"sha256": v.sha256, "rows": v.rows, "passages": v.passages} for k, v in stored.files.items()
        },  # fmt: skip
        "index_file": INDEX_FILE,
        "index_sha256": sha256_bytes(data),
        "tokens_sha256": sha256_bytes(tokens),
        "token_counts_sha256": sha256_bytes(counts),
    }
    # The manifest goes first out of the way, so that a crash between the two writes leaves
    # no manifest vouching for the wrong index file.
    (folder / MANIFEST).unlink(missing_ok=True)
    write_atomic(folder / INDEX_FILE, data)
    write_atomic(folder / TOKENS_FILE, tokens)
    write_atomic(folder / COUNTS_FILE, counts)
    write_atomic(folder / MANIFEST, json.dumps(manifest, indent=1).encode("utf-8"))


class Searchable(Protocol):
    """What ranking needs of an index: FAISS's own search signature and row count."""

    ntotal: int

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]: ...


class Backend(Protocol):
    """Where vectors live. The engine decides what to (re)embed; a backend stores and searches.

    FaissFolder is the one here; QdrantStore (embeddings/qdrant.py) keeps the same vectors in a
    Qdrant collection named after the model as the folder is. `save` gets the sources too, for
    a backend that records each window's span.
    """

    def has_files(self) -> bool: ...  # anything stored, so that a failed load deserves a warning

    def load(self) -> Stored: ...  # raises IndexUnusable when absent or not trustworthy

    def save(self, stored: Stored, sources: dict[str, Source] | None = None) -> None: ...  # OSError if not

    def searchable(self, stored: Stored) -> Searchable: ...

    def problem(self) -> str | None: ...  # why it cannot be searched now (a server down), or None

    def signals(self, stored: Stored) -> object | None: ...  # qa.retrieve.Signals; None: in memory

    def whole(self, stored: Stored) -> Stored: ...  # with the arrays of its held files, to rank in memory


class FaissFolder:
    """Vectors in `<index-dir>/<model-slug>/`, searched in memory by an exact inner-product index."""

    def __init__(self, index_dir: Path, model: dict[str, str]) -> None:
        self.model = model
        self.folder = model_folder(index_dir, model)

    def __str__(self) -> str:
        return str(self.folder)

    def has_files(self) -> bool:
        return (self.folder / MANIFEST).exists() or (self.folder / INDEX_FILE).exists()

    def load(self) -> Stored:
        return load(self.folder, self.model)

    def save(self, stored: Stored, sources: dict[str, Source] | None = None) -> None:
        save(self.folder, stored)

    def searchable(self, stored: Stored) -> faiss.IndexFlatIP:
        return to_faiss(stored.vectors)

    def problem(self) -> str | None:
        return None

    def signals(self, stored: Stored) -> None:
        """None: the vectors are in memory, and qa.retrieve ranks them there (`InMemory`)."""
        return None

    def whole(self, stored: Stored) -> Stored:
        return stored


# --- sync: what changed, embed only that -------------------------------------------------------


@dataclass
class Report:
    """What a sync did, file by file (the keys of `python -m qa index --json`)."""

    added: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    skipped: list[dict[str, str]] = field(default_factory=list)
    embedded_passages: int = 0
    passages: int = 0
    saved: bool = True


@dataclass(frozen=True)
class Source:
    """One transcript as the index sees it: its hash, the texts of its windows (its single
    sentences first, whose token vectors are kept), their character spans, and its sentence count."""

    sha256: str
    windows: Callable[[], list[str]]  # asked for only when the file must be embedded
    rows: int
    passages: int
    spans: Callable[[], list[tuple[int, int]]] = lambda: []  # (start, end) of each window in the file
    lexical: Callable[[], list[str]] = lambda: []  # the words BM25 reads of each window (Edge)


class Embeds(Protocol):
    dim: int

    def encode_tokens(
        self, texts: list[str], batch_size: int = 64, progress: bool = False
    ) -> tuple[np.ndarray, list[np.ndarray], list[list[str]]]: ...


def sync(
    backend: Backend, old: Stored | None, sources: dict[str, Source], embedder: Embeds,
    model: dict[str, str], log: Callable[[str], None], progress: bool = False, unsaved: bool = False,
) -> tuple[Stored, Report]:  # fmt: skip
    """The vectors of `sources`, in their order: those of unchanged files taken from `old`, the
    others embedded now; saved when anything changed, or when `old` itself could not be saved
    (`unsaved`). A file is unchanged when its hash, row and sentence counts all match what `old`
    recorded."""
    report = Report()
    old_parts = old.parts() if old else {}
    todo = []
    for key, src in sources.items():
        entry = old.files.get(key) if old else None
        if entry and (entry.sha256, entry.rows, entry.passages) == (src.sha256, src.rows, src.passages):
            report.unchanged.append(key)
        else:
            (report.changed if entry else report.added).append(key)
            todo.append(key)
    report.removed = sorted(set(old.files) - set(sources)) if old else []
    texts = [t for key in todo for t in sources[key].windows()]
    if texts and progress:
        log(f"embedding {len(texts)} passages from {len(todo)} transcript(s)…")
    fresh, fresh_tokens, _ = embedder.encode_tokens(texts, progress=progress and len(texts) > 64)
    dim = fresh.shape[1] if len(texts) else (old.dim if old else embedder.dim)
    vectors, tokens, counts, files, offset, held = [], [], [], {}, 0, set()
    for key, src in sources.items():
        if key not in todo and key not in old_parts:
            held.add(key)  # unchanged, and its vectors are in the backend only
        elif key in todo:
            vectors.append(fresh[offset : offset + src.rows])
            singles = fresh_tokens[offset : offset + src.passages]  # windows of one sentence
            tokens += singles
            counts.append(np.array([len(x) for x in singles], dtype=np.int32))
            offset += src.rows
        else:
            v, tok, c = old_parts[key]
            vectors.append(v)
            tokens.append(tok)
            counts.append(c)
        files[key] = FileEntry(src.sha256, src.rows, src.passages)
    stored = Stored(
        model, dim, files,
        np.concatenate(vectors) if vectors else np.zeros((0, dim), np.float32),
        np.concatenate(tokens) if tokens else np.zeros((0, dim), np.float16),
        np.concatenate(counts) if counts else np.zeros(0, np.int32), frozenset(held),
    )  # fmt: skip
    report.embedded_passages = len(texts)
    report.passages = sum(f.rows for f in files.values())
    if todo or report.removed or old is None or unsaved:
        try:
            backend.save(stored, sources)
        except OSError as e:
            report.saved = False
            log(f"warning: cannot write the index to {backend} ({e.strerror or e}); "
                "serving from memory, it will be rebuilt on the next start")  # fmt: skip
            stored = backend.whole(stored)
        else:
            if getattr(backend, "holds_vectors", False):  # it searches them: none are kept here
                empty = np.zeros((0, dim), np.float32), np.zeros((0, dim), np.float16), np.zeros(0, np.int32)
                stored = Stored(model, dim, files, *empty, held=frozenset(files))
    return stored, report
