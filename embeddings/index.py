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
import mmap
import os
import re
import tempfile
from collections.abc import Callable, Iterable, Iterator
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
    index: object = None  # the FAISS index whose rows `vectors` is (memory-mapped), kept alive here

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


def load(folder: Path, model: dict[str, str], verify: bool = True) -> Stored:
    """The stored vectors, memory-mapped, or IndexUnusable saying what does not match. Each file is
    hashed as it is read, in pieces (`verify`: not when this process has just written them)."""
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
    _check(folder / INDEX_FILE, digest, verify)
    try:  # memory-mapped: the rows stay in the page cache, shared, not in this process's memory
        index = faiss.read_index(str(folder / INDEX_FILE), faiss.IO_FLAG_MMAP_IFC)
    except RuntimeError as e:
        raise IndexUnusable(f"{folder / INDEX_FILE} cannot be read by FAISS ({e})") from None
    if index.ntotal != count or index.d != dim or sum(f.rows for f in files.values()) != count:
        raise IndexUnusable(f"{folder / INDEX_FILE} holds {index.ntotal} rows, manifest says {count}")
    tokens, counts = (
        _load_array(folder / name, want, verify)
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
    return Stored(model, dim, files, rows_of(index), tokens, counts, index=index)


class _Rows:
    """An index's rows seen as an array, not copied: the array made from it (and every slice of
    that) holds this object as its base, and so keeps the index, and its memory map, alive."""

    def __init__(self, index: faiss.IndexFlatIP) -> None:
        self.index = index
        address = faiss.rev_swig_ptr(index.get_xb(), index.ntotal * index.d).__array_interface__["data"][0]
        self.__array_interface__ = {
            "shape": (index.ntotal, index.d), "typestr": "<f4", "data": (address, True), "version": 3,
        }  # fmt: skip


def rows_of(index: faiss.IndexFlatIP) -> np.ndarray:
    """The index's own rows, read-only, without a copy."""
    if index.ntotal == 0:
        return np.zeros((0, index.d), np.float32)
    return np.asarray(_Rows(index))


CHUNK_BYTES = 1 << 24  # read and written in pieces of 16 MiB: never a whole file in memory


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(CHUNK_BYTES):
            digest.update(block)
    return digest.hexdigest()


def _check(path: Path, digest: str, verify: bool = True) -> None:
    try:
        actual = sha256_file(path) if verify else digest
    except OSError as e:
        raise IndexUnusable(f"cannot read {path} ({e.strerror or e})") from None
    if actual != digest:
        raise IndexUnusable(f"{path} does not match its checksum (damaged)")


def _load_array(path: Path, digest: str, verify: bool = True) -> np.ndarray:
    _check(path, digest, verify)
    try:
        return np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError) as e:
        raise IndexUnusable(f"{path} cannot be read ({e})") from None


def _array_chunks(arrays: list[np.ndarray], dtype: str, header: bool = True) -> Iterator[bytes]:
    """One .npy file of these arrays stacked (rows of the same width), piece by piece. A piece
    read from a memory-mapped array is let go of at once, so a copy of gigabytes of token vectors
    never sits in this process's memory."""
    if header:
        width = arrays[0].shape[1:] if arrays else ()
        n = sum(len(a) for a in arrays)
        buffer = io.BytesIO()
        np.lib.format.write_array_header_1_0(
            buffer, {"descr": np.dtype(dtype).str, "fortran_order": False, "shape": (n, *width)}
        )
        yield buffer.getvalue()
    for a in arrays:
        step = max(1, CHUNK_BYTES // max(1, a[:1].nbytes))
        for i in range(0, len(a), step):
            yield np.ascontiguousarray(a[i : i + step], dtype=dtype).tobytes()
            _let_go(a)


def _let_go(array: np.ndarray) -> None:
    """Drop the pages of a memory-mapped array from this process (they stay in the page cache)."""
    base = array
    while base is not None and not isinstance(base, np.memmap):
        base = base.base
    mapping = getattr(base, "_mmap", None)  # numpy keeps the mmap object there
    if mapping is not None:
        mapping.madvise(mmap.MADV_DONTNEED)


def write_atomic(path: Path, data: bytes | Iterable[bytes] | Callable[[str], None]) -> str:
    """Temp file in the same folder (".NAME.*.tmp"), fsync, rename, fsync the folder: a reader
    sees the old file or the new one, whole, and a crash leaves at most a temp file. `data` is
    the bytes, pieces of them (hashed as they are written), or a function that writes the temp
    file by its name (hashed after). Returns the file's sha256."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            digest = hashlib.sha256()
            if callable(data):
                data(tmp)
            for block in [data] if isinstance(data, bytes) else [] if callable(data) else data:
                f.write(block)
                digest.update(block)
            f.flush()
            os.fsync(f.fileno())
        sha = sha256_file(Path(tmp)) if callable(data) else digest.hexdigest()
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
    return sha


def save(folder: Path, stored: Stored) -> None:
    """Write the index, then the manifest that vouches for it. Raises OSError if not writable."""
    folder.mkdir(parents=True, exist_ok=True)
    for stale in folder.glob(".*.tmp"):  # left by a process killed while writing
        stale.unlink(missing_ok=True)
    index = stored.index if stored.index is not None else to_faiss(stored.vectors)
    # The manifest goes first out of the way, so that a crash between the writes leaves no
    # manifest vouching for the wrong files.
    (folder / MANIFEST).unlink(missing_ok=True)
    index_sha = write_atomic(folder / INDEX_FILE, lambda tmp: faiss.write_index(index, tmp))
    tokens_sha = write_atomic(folder / TOKENS_FILE, _array_chunks([stored.tokens], "<f2"))
    counts_sha = write_atomic(folder / COUNTS_FILE, _array_chunks([stored.token_counts], "<i4"))
    manifest = {
        "format_version": FORMAT_VERSION,
        "model": stored.model,
        "dim": stored.dim,
        "count": int(len(stored.vectors)),
        "files": {
            k: {"sha256": v.sha256, "rows": v.rows, "passages": v.passages} for k, v in stored.files.items()
        },  # fmt: skip
        "index_file": INDEX_FILE,
        "index_sha256": index_sha,
        "tokens_sha256": tokens_sha,
        "token_counts_sha256": counts_sha,
    }
    write_atomic(folder / MANIFEST, json.dumps(manifest, indent=1).encode("utf-8"))


class Searchable(Protocol):
    """What ranking needs of an index: FAISS's own search signature and row count."""

    ntotal: int

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]: ...


class Backend(Protocol):
    """Where vectors live. The engine decides what to (re)embed; a backend stores and searches.

    FaissFolder is the one here; EdgeStore (embeddings/edge.py) keeps them in a Qdrant Edge shard
    and computes the ranking's signals there; QdrantStore (embeddings/qdrant.py) on a server.
    `save` gets the sources too, for a backend that records each window's span and BM25 words.
    """

    def has_files(self) -> bool: ...  # anything stored, so that a failed load deserves a warning

    def load(self) -> Stored: ...  # raises IndexUnusable when absent or not trustworthy

    def save(self, stored: Stored, sources: dict[str, Source] | None = None) -> None: ...  # OSError if not

    def searchable(self, stored: Stored) -> Searchable: ...

    def problem(self) -> str | None: ...  # why it cannot be searched now (a server down), or None

    def signals(self, stored: Stored) -> object | None: ...  # qa.retrieve.Signals; None: in memory

    def whole(self, stored: Stored) -> Stored: ...  # with the arrays of its held files, to rank in memory

    def saved(self, stored: Stored) -> Stored: ...  # what to keep of `stored` once saved


class FaissFolder:
    """Vectors in `<index-dir>/<model-slug>/`, searched in memory by an exact inner-product index."""

    def __init__(self, index_dir: Path, model: dict[str, str]) -> None:
        self.model = model
        self.folder = model_folder(index_dir, model)

    def __str__(self) -> str:
        return str(self.folder)

    def has_files(self) -> bool:
        return (self.folder / MANIFEST).exists() or (self.folder / INDEX_FILE).exists()

    @property
    def scratch(self) -> Path | None:
        """Where a build spools token vectors: beside the index (not /tmp, often in memory)."""
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError:
            return None
        return self.folder

    def load(self) -> Stored:
        return load(self.folder, self.model)

    def save(self, stored: Stored, sources: dict[str, Source] | None = None) -> None:
        save(self.folder, stored)

    def searchable(self, stored: Stored) -> faiss.IndexFlatIP:
        return stored.index if stored.index is not None else to_faiss(stored.vectors)

    def saved(self, stored: Stored) -> Stored:
        """What was just written, memory-mapped: one copy of the rows, in the page cache."""
        return load(self.folder, self.model, verify=False)

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
    embedded_windows: int = 0  # embedded by this sync
    windows: int = 0  # in the index: runs of 1-3 sentences of one turn, one vector each
    sentences: int = 0  # in the index: what the transcripts were split into
    saved: bool = True

    def line(self) -> str:
        """The counts as the start log and `python -m qa index` say them."""
        files = len(self.added) + len(self.changed) + len(self.unchanged)
        return (f"{files} transcript(s), {self.sentences} sentences, {self.windows} windows "
                f"({self.embedded_windows} embedded now)")  # fmt: skip


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
    if old and not (todo or report.removed or unsaved) and list(old.files) == list(sources):
        report.windows = sum(f.rows for f in old.files.values())
        report.sentences = sum(src.passages for src in sources.values())
        return old, report  # as loaded: memory-mapped, or held by the backend
    texts = [t for key in todo for t in sources[key].windows()]
    if texts and progress:
        sentences = sum(sources[key].passages for key in todo)
        log(f"embedding {len(texts)} windows ({sentences} sentences) of {len(todo)} transcript(s)…")
    singles = np.zeros(len(texts), bool)  # the windows of one sentence, whose token vectors are kept
    at = 0
    for key in todo:
        singles[at : at + sources[key].passages] = True
        at += sources[key].rows
    dim = embedder.dim if texts or not old else old.dim
    scratch = getattr(backend, "scratch", None)  # where temp files go: beside the index
    spool = tempfile.TemporaryFile(dir=scratch)  # the fresh token vectors, in order
    fresh_index, fresh_counts = _embed(texts, singles, embedder, spool, dim, log if progress else None)
    fresh = rows_of(fresh_index)
    # The rows go straight into a FAISS index, the one copy there is of them (saved as it is).
    index = fresh_index if all(key in todo for key in sources) else faiss.IndexFlatIP(dim)
    counts, files, offset, passage, held = [], {}, 0, 0, set()
    for key, src in sources.items():
        if key not in todo and key not in old_parts:
            held.add(key)  # unchanged, and its vectors are in the backend only
        elif key in todo:
            if index is not fresh_index:
                index.add(np.ascontiguousarray(fresh[offset : offset + src.rows]))
            counts.append(fresh_counts[passage : passage + src.passages])
            offset, passage = offset + src.rows, passage + src.passages
        else:
            v, tok, c = old_parts[key]
            index.add(np.ascontiguousarray(v, dtype=np.float32))
            counts.append(c)
        files[key] = FileEntry(src.sha256, src.rows, src.passages)
    del fresh, fresh_index
    tokens = _tokens_in_order(sources, todo, old_parts, held, spool, fresh_counts, dim, scratch)
    stored = Stored(
        model, dim, files, rows_of(index), tokens,
        np.concatenate(counts) if counts else np.zeros(0, np.int32), frozenset(held), index,
    )  # fmt: skip
    report.embedded_windows = len(texts)
    report.windows = sum(f.rows for f in files.values())
    report.sentences = sum(src.passages for src in sources.values())
    if todo or report.removed or old is None or unsaved:
        try:
            backend.save(stored, sources)
        except OSError as e:
            report.saved = False
            log(f"warning: cannot write the index to {backend} ({e.strerror or e}); "
                "serving from memory, it will be rebuilt on the next start")  # fmt: skip
            stored = backend.whole(stored)
        else:
            stored = backend.saved(stored)
    return stored, report


CHUNK = 1024  # windows embedded at a time: the model's padded token tensors of one chunk only


def _embed(
    texts: list[str], singles: np.ndarray, embedder: Embeds, spool, dim: int,
    log: Callable[[str], None] | None,
) -> tuple[faiss.IndexFlatIP, np.ndarray]:  # fmt: skip
    """Unit vectors of `texts` in a FAISS index, and the token counts of the `singles`, whose token
    vectors are appended to `spool` as float16 rows. Chunk by chunk: nothing else of the model's
    output is kept."""
    vectors = faiss.IndexFlatIP(dim)
    counts = []
    for start in range(0, len(texts), CHUNK):
        v, tokens, _ = embedder.encode_tokens(texts[start : start + CHUNK])
        vectors.add(np.ascontiguousarray(v, dtype=np.float32))
        for i in np.flatnonzero(singles[start : start + CHUNK]):
            spool.write(np.ascontiguousarray(tokens[i], dtype="<f2").tobytes())
            counts.append(len(tokens[i]))
        if log and len(texts) > CHUNK and (start // CHUNK) % 10 == 9:
            log(f"embedded {start + len(v)} of {len(texts)} windows")
    return vectors, np.array(counts, np.int32)


def _tokens_in_order(
    sources: dict[str, Source], todo: list[str], old_parts: dict, held: set[str], spool,
    fresh_counts: np.ndarray, dim: int, scratch: Path | None,
) -> np.ndarray:  # fmt: skip
    """Every file's token vectors in the order of `sources` (held files aside), as one array mapped
    from a temp file: `spool` itself when it is that order already (every file new), else a second
    file that the fresh rows and those of unchanged files are copied into, piece by piece."""
    spool.flush()
    row = dim * 2
    if all(key in todo or key in held for key in sources):
        n = int(fresh_counts.sum())
        return np.memmap(spool, "<f2", "r", shape=(n, dim)) if n else np.zeros((0, dim), np.float16)
    out, total, fresh_at, p = tempfile.TemporaryFile(dir=scratch), 0, 0, 0
    for key, src in sources.items():
        if key in held:
            continue
        if key in todo:
            n = int(fresh_counts[p : p + src.passages].sum())
            spool.seek(fresh_at * row)
            left = n * row
            while left:
                block = spool.read(min(left, CHUNK_BYTES))
                out.write(block)
                left -= len(block)
            fresh_at, p, total = fresh_at + n, p + src.passages, total + n
        else:
            tokens = old_parts[key][1]
            for block in _array_chunks([tokens], "<f2", header=False):
                out.write(block)
            total += len(tokens)
    spool.close()
    out.flush()
    return np.memmap(out, "<f2", "r", shape=(total, dim)) if total else np.zeros((0, dim), np.float16)
