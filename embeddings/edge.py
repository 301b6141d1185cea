"""The index in Qdrant Edge (`qdrant-edge-py`): Qdrant's own engine inside this process.

`--backend qdrant --qdrant-path DIR`. One shard per model (and eval namespace) in `DIR/<name>/`,
named as the FAISS folder is (`all-minilm-l6-v2-53aa51172d14`). Each window of a transcript is one
point, its id `slot << 32 | row` (`slot`: its file's number in the record, `row`: the window's
row within its file):

    vector "dense"     its unit vector; cosine
    vector "tokens"    for a window of one sentence, that sentence's unit token vectors: a float16
                       multivector compared by MaxSim. A window of 2-3 sentences has none: its
                       MaxSim is taken from its sentences' (qa/retrieve.py, `Ranker.maxsim`).
    payload            file (key and hash together; keyword index), source (the file's key;
                       keyword index), row, start, end (its span in the file), and t: the words
                       BM25 reads (qa/retrieve.py `lexical_doc`), in a text index with scoring.

The engine computes all three signals (`EdgeSignals`): the nearest windows by cosine (exact up to
`EXACT_UPTO` windows, through an HNSW graph above), MaxSim over given windows, BM25 through the
text index. The process holds no vector, token vector or BM25 array of a window; it reads the
files for what it quotes. Token vectors and payload stay on disk (`Memory.Cold`); the dense
vectors and their graph are read in when the shard opens (`Memory.Cached`, see `_config`).

Point 1, with no vector, is the record of what is indexed: format version, model, dimension, and
each file with its hash, rows, sentences, token vectors and slot. A sync writes the points of new
and changed files, then the record, then deletes the points of files the record no longer lists.
A sync cut short leaves the previous record and every point it lists; points the record does not
list are never searched (every query is filtered to the listed files) and are deleted on load.

The folder is this process's alone while it runs (a lock file, `DIR/.lock`): a second process
is told so at once rather than waiting.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from embeddings.index import FORMAT_VERSION, FileEntry, IndexUnusable, Source, Stored, model_folder
from embeddings.qdrant import BackendUnavailable, _reason, check_record

BATCH = 512  # points per upsert
FLUSH_EVERY = 50 * BATCH  # points upserted between flushes
# A large save is optimized (graph built, segment sealed) every SEGMENT points, into segments of
# that size that are never merged: the optimizer rewrites a segment whole, with all its token
# vectors, and one segment of 1M windows (10.6 GB) did not fit in memory beside its copy.
SEGMENT = 100_000
# Up to this many windows the dense search is exact, so small folders rank as FAISS does (the shared
# eval sets give the same figures on both); above, it walks an HNSW graph, which a save builds.
EXACT_UPTO = 20_000
HNSW_EF = 128  # candidates the graph search keeps, for the 64 the ranking asks for
RECORD_ID = 1  # no window has an id below 1 << 32
ROW_BITS = 32
TIE = 1e-5  # BM25 scores this close are equal: qa/retrieve.py's TIE, the contract of `bm25_top`


def file_id(key: str, sha256: str) -> str:
    return hashlib.sha256(f"{key}\0{sha256}".encode()).hexdigest()[:32]


class Folder:
    """`DIR`, locked for this process, and the shards opened in it (one open per shard: Edge's
    write-ahead log is locked by the process that opened it)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path).resolve()
        self.path.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(self.path / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._fd)
            raise BackendUnavailable(
                f"cannot use the Qdrant folder {self.path}: already accessed by another process; "
                "stop it or give another --qdrant-path"
            ) from None
        self.shards: dict[str, object] = {}
        self.lock = threading.RLock()  # shard calls take turns (`Locked`)

    def close(self) -> None:
        with self.lock:
            for shard in self.shards.values():
                shard.close()
            self.shards.clear()
            if self._fd >= 0:
                os.close(self._fd)
                self._fd = -1


class Locked:
    """A shard whose calls take turns: the watcher saves while requests search, and each call,
    not a whole save, holds the folder's lock, so searches go on between a save's batches."""

    def __init__(self, shard, lock: threading.RLock) -> None:
        self._shard, self._lock = shard, lock

    def __getattr__(self, name: str):
        attr = getattr(self._shard, name)

        def call(*args, **kwargs):
            with self._lock:
                return attr(*args, **kwargs)

        return call


_folders: dict[str, Folder] = {}


def connect(path: Path) -> Folder:
    """The folder, locked for this process. Raises BackendUnavailable naming it when it cannot be used."""
    where = str(Path(path).resolve())
    if where not in _folders:
        try:
            _folders[where] = Folder(Path(path))
        except OSError as e:
            if isinstance(e, BackendUnavailable):
                raise
            raise BackendUnavailable(f"cannot use the Qdrant folder {where}: {e.strerror or e}") from None
    return _folders[where]


def release(path: Path) -> None:
    """Close this process's shards in the folder and let go of its lock."""
    folder = _folders.pop(str(Path(path).resolve()), None)
    if folder is not None:
        folder.close()


def _config(dim: int):
    """Token vectors and payload left on disk (`Memory.Cold`): opening reads none of them, a
    search reads those of its candidates. The dense vectors and their graph (1.5 GB at 1M windows)
    are `Memory.Cached`: mapped and read in whole when the shard opens, into the page cache
    (shared and evictable, not this process's own memory), because the graph walk of every
    question touches pages all over them; left cold, a fresh process took a disk read and a page
    fault per step (README, "Scale"). Closing a shard drops its files from the page cache, so each
    start reads them again.
    Only the dense vector gets an HNSW graph: token vectors are only compared over given windows,
    and a graph over every token would take longer to build than the rest of the index."""
    from qdrant_edge import (
        Distance,
        EdgeConfig,
        EdgeOptimizersConfig,
        EdgeVectorParams,
        HnswIndexConfig,
        Memory,
        MultiVectorComparator,
        MultiVectorConfig,
    )
    from qdrant_edge import VectorStorageDatatype as Storage

    graph = HnswIndexConfig(m=16, ef_construct=64, full_scan_threshold=10_000, memory=Memory.Cached)
    none = HnswIndexConfig(m=0, ef_construct=64, full_scan_threshold=10_000, memory=Memory.Cold)
    kib = max(1, EXACT_UPTO * dim * 4 // 1024)  # a segment past EXACT_UPTO dense vectors gets its graph
    return EdgeConfig(vectors={
        "dense": EdgeVectorParams(size=dim, distance=Distance.Cosine, memory=Memory.Cached,
                                  hnsw_config=graph),
        "tokens": EdgeVectorParams(size=dim, distance=Distance.Cosine, datatype=Storage.Float16,
                                   multivector_config=MultiVectorConfig(MultiVectorComparator.MaxSim),
                                   memory=Memory.Cold, hnsw_config=none),
    }, hnsw_config=graph, payload_memory=Memory.Cold,
       optimizers=EdgeOptimizersConfig(indexing_threshold=kib, default_segment_number=64,
                                       max_segment_size=SEGMENT * dim * 4 // 1024))  # fmt: skip


def _listed(fids: list[str]):
    from qdrant_edge import FieldCondition, MatchAny

    return FieldCondition("file", match=MatchAny(sorted(fids) or [""]))


class EdgeStore:
    """A `Backend` (embeddings/index.py) in one Qdrant Edge shard."""

    holds_vectors = True  # after a save, the process keeps none of them

    def __init__(self, folder: Folder, model: dict[str, str], namespace: str = "") -> None:
        self.folder, self.model = folder, model
        slug = model_folder(Path(), model).name
        self.name = f"{namespace}-{slug}" if namespace else slug
        self.path = folder.path / self.name
        self._slots: dict[str, int] = {}  # file_id -> slot, of the files the record lists
        self._present: set[str] = set()  # files (file_id) whose points are all in the shard
        self._tokens: dict[str, int] = {}  # key -> its token vectors, as the record says
        self._large, self._unsealed = False, 0  # a save past EXACT_UPTO; points since an optimize

    def __str__(self) -> str:
        return f"Qdrant Edge shard {self.path}"

    @property
    def scratch(self) -> Path:
        """Where a build spools token vectors before they are upserted."""
        return self.folder.path

    @contextmanager
    def _reach(self) -> Iterator[None]:
        """The engine's errors (a disk full, a damaged shard) as BackendUnavailable, an OSError."""
        try:
            yield
        except (IndexUnusable, BackendUnavailable):
            raise
        except Exception as e:  # noqa: BLE001 - the engine raises plain Exception
            raise BackendUnavailable(f"Qdrant Edge at {self.path}: {_reason(e)}") from None

    @property
    def shard(self):
        return self.folder.shards.get(self.name)

    def _open(self):
        """The shard, opened once per process; None if there is none."""
        from qdrant_edge import EdgeShard

        if self.shard is None:
            if not (self.path / "edge_config.json").exists() and not (self.path / "segments").exists():
                return None
            try:
                self.folder.shards[self.name] = Locked(EdgeShard.load(str(self.path)), self.folder.lock)
            except Exception as e:  # noqa: BLE001
                raise IndexUnusable(f"{self} cannot be opened ({_reason(e)})") from None
        return self.shard

    def _drop(self) -> None:
        """Close and delete the shard: it is of another format, or cannot be opened."""
        shard = self.folder.shards.pop(self.name, None)
        if shard is not None:
            shard.close()
        shutil.rmtree(self.path, ignore_errors=True)

    def problem(self) -> str | None:
        """Why the shard cannot be searched now (closed under us, damaged on disk), or None."""
        if self.shard is None:
            return None
        try:
            with self._reach():
                self.shard.info()
        except BackendUnavailable as e:
            return str(e)
        return None

    def has_files(self) -> bool:
        return self.path.exists() and any(self.path.iterdir())

    def _record(self) -> dict:
        found = self.shard.retrieve([RECORD_ID], with_payload=True, with_vector=False)
        if not found:
            raise IndexUnusable(f"{self} holds no record of what is indexed")
        return found[0].payload or {}

    def _fits(self, dim: int) -> str | None:
        """Why the shard's vectors are not ours (names, sizes), or None: a query of each tells."""
        from qdrant_edge import Filter, HasIdCondition, Query, QueryRequest

        probe = [1.0] + [0.0] * (dim - 1)
        record_only = Filter(must=[HasIdCondition({RECORD_ID})])  # checked, not a scan of every point
        for name, vector in (("dense", probe), ("tokens", [probe])):
            try:
                self.shard.query(
                    QueryRequest(limit=1, query=Query.Nearest(vector, using=name), filter=record_only)
                )
            except Exception as e:  # noqa: BLE001
                return f"its vector {name!r} is not {dim} dimensions ({_reason(e)})"
        return None

    def load(self) -> Stored:
        """What the record lists, its arrays left in the shard (`held`)."""
        from qdrant_edge import CountRequest, Filter

        self._slots, self._present = {}, set()
        with self._reach():
            if self._open() is None:
                raise IndexUnusable(f"no index in {self}")
            record = self._record()
            try:
                check_record(self, record, self.model)
                dim = int(record["dim"])
                files = {k: FileEntry(sha, int(rows), int(n)) for k, sha, rows, n, *_ in record["files"]}
                slots = {file_id(k, sha): int(slot) for k, sha, _, _, _, slot in record["files"]}
            except (KeyError, TypeError, ValueError, AttributeError) as e:
                raise IndexUnusable(f"the record in {self} is malformed ({e})") from None
            why = self._fits(dim)
            if why:
                raise IndexUnusable(f"{self} is not an index of this format: {why}")
            listed = self.shard.count(CountRequest(exact=True, filter=Filter(must=[_listed(list(slots))])))
            rows = sum(f.rows for f in files.values())
            if listed != rows:
                raise IndexUnusable(f"{self} holds {listed} points of the files it lists, not {rows}")
            if self.shard.info().points_count > listed + 1:  # a sync cut short after its record
                self._drop_unlisted(list(slots))
        self._slots, self._present = slots, set(slots)
        self._tokens = {k: int(t) for k, _, _, _, t, _ in record["files"]}
        empty = (np.zeros((0, dim), np.float32), np.zeros((0, dim), np.float16), np.zeros(0, np.int32))
        return Stored(self.model, dim, files, *empty, held=frozenset(files))

    def save(self, stored: Stored, sources: dict[str, Source] | None = None) -> None:
        """Upload the files the shard does not hold whole, then the record, then drop the points
        of files no longer listed. Raises BackendUnavailable (an OSError) when it cannot."""
        with self._reach():
            self._prepare(stored.dim)
            self._large = sum(entry.rows for entry in stored.files.values()) > EXACT_UPTO
            self._unsealed = 0
            parts = stored.parts()
            listed, slots = [], {}
            free = max([0, *self._slots.values()]) + 1
            for key, entry in stored.files.items():
                fid = file_id(key, entry.sha256)
                if fid in self._present:
                    slot, tokens = self._slots[fid], self._tokens.get(key, 0)
                else:
                    if key not in parts:
                        raise IndexUnusable(f"{self} lost the points of {key}")
                    slot, free = free, free + 1
                    vectors, tokens_of, counts = parts[key]
                    source = sources.get(key) if sources else None
                    self._upload(key, fid, slot, vectors, tokens_of, counts, source)
                    tokens = int(counts.sum())
                slots[fid] = slot
                listed.append([key, entry.sha256, entry.rows, entry.passages, tokens, slot])
            self._write_record(stored, listed)
            self._drop_unlisted(list(slots))
            if self._large:
                self.shard.optimize()  # the HNSW graph, and segments that open without being read
            self.shard.flush()
        self._slots, self._present, self._tokens = slots, set(slots), {k: t for k, *_, t, _ in listed}

    def _prepare(self, dim: int) -> None:
        """The shard, created, or created anew when it was made for another format."""
        from qdrant_edge import EdgeShard, PayloadSchemaType, TextIndexParams, TokenizerType, UpdateOperation

        try:
            shard = self._open()
        except IndexUnusable:
            shard = None
            self._drop()
        if shard is not None:
            why = self._fits(dim)
            try:
                record = self._record()
                why = why or ("another format" if record.get("format_version") != FORMAT_VERSION else None)
                why = why or ("another model" if record.get("model") != self.model else None)
                why = why or ("another dimension" if record.get("dim") != dim else None)
                if not why:
                    self._tokens = {k: int(t) for k, *_, t, _ in record["files"]}
            except (IndexUnusable, KeyError, TypeError, ValueError):
                pass  # a shard whose first sync was cut short: its points are ours
            if not why:
                return
            self._drop()
        self._slots, self._present = {}, set()
        shutil.rmtree(self.path, ignore_errors=True)
        self.folder.shards[self.name] = shard = Locked(
            EdgeShard.create(str(self.path), _config(dim)), self.folder.lock
        )
        shard.update(UpdateOperation.create_field_index("file", PayloadSchemaType.Keyword))
        shard.update(UpdateOperation.create_field_index("source", PayloadSchemaType.Keyword))
        words = TextIndexParams(tokenizer=TokenizerType.Whitespace, lowercase=False, scoring=True)
        shard.update(UpdateOperation.create_field_index("t", words))

    def _upload(self, key, fid, slot, vectors, tokens, counts, source: Source | None) -> None:
        from qdrant_edge import Point, UpdateOperation

        starts = np.concatenate([[0], np.cumsum(counts)])
        spans = source.spans() if source else None
        docs = source.lexical() if source else None
        points = []
        for row, vector in enumerate(vectors):  # lists: the engine takes them faster than arrays
            named = {"dense": np.asarray(vector, np.float32).tolist()}
            if row < len(counts) and counts[row] > 0:
                named["tokens"] = np.asarray(tokens[starts[row] : starts[row + 1]], np.float32).tolist()
            payload = {"file": fid, "source": key, "row": row}
            if spans:
                payload["start"], payload["end"] = spans[row]
            if docs:
                payload["t"] = docs[row]
            points.append(Point((slot << ROW_BITS) | row, named, payload))
            self._unsealed += 1
            seal = self._large and self._unsealed >= SEGMENT
            if len(points) == BATCH or seal:
                self.shard.update(UpdateOperation.upsert_points(points))
                points = []
            if row % FLUSH_EVERY == FLUSH_EVERY - 1:
                self.shard.flush()  # lets the write-ahead log drop what it holds: ~15 KB a point
            if seal:
                self.shard.optimize()
                self._unsealed = 0
        if points:
            self.shard.update(UpdateOperation.upsert_points(points))

    def _write_record(self, stored: Stored, listed: list) -> None:
        from qdrant_edge import Point, UpdateOperation

        record = {"format_version": FORMAT_VERSION, "model": stored.model, "dim": stored.dim,
                  "count": sum(f.rows for f in stored.files.values()), "files": listed}  # fmt: skip
        self.shard.update(UpdateOperation.upsert_points([Point(RECORD_ID, {}, record)]))

    def _drop_unlisted(self, keep: list[str]) -> None:
        from qdrant_edge import Filter, HasIdCondition, UpdateOperation

        stale = Filter(must_not=[HasIdCondition({RECORD_ID}), _listed(keep)])
        self.shard.update(UpdateOperation.delete_points_by_filter(stale))

    def saved(self, stored: Stored) -> Stored:
        """Nothing of it: the shard holds and searches every vector now."""
        empty = (
            np.zeros((0, stored.dim), np.float32),
            np.zeros((0, stored.dim), np.float16),
            np.zeros(0, np.int32),
        )
        return Stored(stored.model, stored.dim, stored.files, *empty, held=frozenset(stored.files))

    def searchable(self, stored: Stored) -> EdgeSignals:
        return EdgeSignals(self, stored)

    def signals(self, stored: Stored) -> EdgeSignals:
        return EdgeSignals(self, stored)

    def whole(self, stored: Stored) -> Stored:
        """`stored` with the arrays of the files the shard holds read back: a view whose save
        failed is ranked in memory, all of it."""
        if not stored.held:
            return stored
        from qdrant_edge import Filter, ScrollRequest

        parts = stored.parts()
        held = {file_id(k, stored.files[k].sha256): k for k in stored.held}
        got: dict[str, dict[int, tuple]] = {k: {} for k in stored.held}
        offset = None
        with self._reach():
            while True:
                points, offset = self.shard.scroll(ScrollRequest(
                    offset=offset, limit=1024, filter=Filter(must=[_listed(list(held))]),
                    with_payload=["file", "row"], with_vector=True,
                ))  # fmt: skip
                for p in points:
                    got[held[p.payload["file"]]][int(p.payload["row"])] = p.vector
                if offset is None:
                    break
        vectors, tokens, counts = [], [], []
        for key, entry in stored.files.items():
            if key in parts:
                v, t, c = parts[key]
            else:
                rows = got[key]
                if len(rows) != entry.rows:
                    raise IndexUnusable(f"{self} is missing points of {key}")
                v = np.array([rows[r]["dense"] for r in range(entry.rows)], np.float32)
                singles = [np.array(rows[r].get("tokens", []), np.float16).reshape(-1, stored.dim)
                           for r in range(entry.passages)]  # fmt: skip
                t = np.concatenate(singles) if singles else np.zeros((0, stored.dim), np.float16)
                c = np.array([len(s) for s in singles], np.int32)
            vectors.append(v)
            tokens.append(t)
            counts.append(c)
        dim = stored.dim
        return Stored(
            stored.model, dim, stored.files,
            np.concatenate(vectors) if vectors else np.zeros((0, dim), np.float32),
            np.concatenate(tokens) if tokens else np.zeros((0, dim), np.float16),
            np.concatenate(counts) if counts else np.zeros(0, np.int32),
        )  # fmt: skip


class EdgeSignals:
    """qa/retrieve.py's `Signals`, computed by the engine over the files of one view (rows of
    `stored`, in its order). Only their points are searched: a sync under way adds others."""

    def __init__(self, store: EdgeStore, stored: Stored) -> None:
        self.store = store
        slots, starts, row = [], [], 0
        for key, entry in stored.files.items():
            slots.append(store._slots[file_id(key, entry.sha256)])
            starts.append(row)
            row += entry.rows
        self.ntotal = row
        self.slots = np.array(slots, np.int64)
        self.starts = np.array(starts, np.int64)
        self.start_of = dict(zip(slots, starts, strict=True))
        self.listed = _listed([file_id(k, e.sha256) for k, e in stored.files.items()])

    def _ids(self, rows: np.ndarray) -> set[int]:
        rows = np.asarray(rows, np.int64)
        at = np.searchsorted(self.starts, rows, side="right") - 1
        return set(((self.slots[at] << ROW_BITS) | (rows - self.starts[at])).tolist())

    def _row(self, point_id: int) -> int:
        return self.start_of[point_id >> ROW_BITS] + (point_id & ((1 << ROW_BITS) - 1))

    def _where(self, allowed: np.ndarray | None):
        from qdrant_edge import Filter, HasIdCondition

        if allowed is None:
            return Filter(must=[self.listed])
        return Filter(must=[self.listed, HasIdCondition(self._ids(np.flatnonzero(allowed)))])

    def _query(
        self, query, limit: int, where, exact: bool = False, graph: bool = False
    ) -> list[tuple[int, float]]:
        """`exact`: a scan of every point the filter lets through; `graph`: the HNSW graph, keeping
        HNSW_EF candidates; neither: as the engine plans it (MaxSim and BM25 over given points)."""
        from qdrant_edge import QueryRequest, SearchParams

        if limit <= 0:
            return []
        params = None  # as the engine plans it
        if exact or graph:
            params = SearchParams(exact=True) if exact else SearchParams(hnsw_ef=max(HNSW_EF, limit))
        request = QueryRequest(limit=limit, query=query, filter=where, with_payload=False, params=params)
        with self.store._reach():
            found = self.store.shard.query(request)
        return [(self._row(int(p.id)), p.score) for p in found]

    def _by_row(self, found: list[tuple[int, float]], rows: np.ndarray, missing: float) -> np.ndarray:
        score = dict(found)
        return np.array([score.get(int(r), missing) for r in rows], np.float32)

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """FAISS's signature, for tests and benches that ask for the nearest rows."""
        scores = np.full((len(queries), k), -np.inf, np.float32)
        rows = np.full((len(queries), k), -1, np.int64)
        for i, q in enumerate(queries):
            for j, (r, s) in enumerate(self.nearest(q, k, None)):
                scores[i, j], rows[i, j] = s, r
        return scores, rows

    def nearest(self, vector: np.ndarray, k: int, allowed: np.ndarray | None) -> list[tuple[int, float]]:
        from qdrant_edge import Query

        if allowed is not None and not allowed.any():
            return []
        query = Query.Nearest(np.asarray(vector, np.float32).tolist(), using="dense")
        exact = self.ntotal <= EXACT_UPTO
        return self._query(query, min(k, self.ntotal), self._where(allowed), exact=exact, graph=not exact)

    def cosine(self, vector: np.ndarray, rows: np.ndarray) -> np.ndarray:
        from qdrant_edge import Filter, HasIdCondition, Query

        query = Query.Nearest(np.asarray(vector, np.float32).tolist(), using="dense")
        where = Filter(must=[HasIdCondition(self._ids(rows))])
        return self._by_row(self._query(query, len(rows), where, exact=True), rows, 0.0)

    def token_best(self, query_tokens: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """One MaxSim query per query token: Edge's MaxSim of a one-vector query is that token's
        best cosine in the window, what a window of several sentences is made of."""
        from qdrant_edge import Filter, HasIdCondition, Query, QueryBatchRequest, QueryRequest

        best = np.full((len(rows), len(query_tokens)), -1.0, np.float32)
        if not len(rows) or not len(query_tokens):
            return best
        where = Filter(must=[HasIdCondition(self._ids(rows))])
        batch = QueryBatchRequest([
            QueryRequest(limit=len(rows), query=Query.Nearest([t.tolist()], using="tokens"), filter=where,
                         with_payload=False)
            for t in np.asarray(query_tokens, np.float32)
        ])  # fmt: skip
        with self.store._reach():
            found = self.store.shard.query_batch(batch)
        position = {int(r): i for i, r in enumerate(rows)}
        for j, points in enumerate(found):
            for p in points:
                best[position[self._row(int(p.id))], j] = p.score
        return best

    def bm25_top(self, terms: list[str], k: int, allowed: np.ndarray | None) -> list[tuple[int, float]]:
        from qdrant_edge import TextQuery

        if not terms or (allowed is not None and not allowed.any()):
            return []
        query, where, limit = TextQuery("t", " ".join(terms)), self._where(allowed), k
        while True:  # the k best, and all those tied with the k-th (qa/retrieve.py, `TIE`)
            found = [(r, s) for r, s in self._query(query, limit, where) if s > 0]
            if len(found) < limit or found[-1][1] < found[k - 1][1] - TIE:
                break
            limit *= 4
        return [(r, s) for r, s in found if len(found) <= k or s >= found[k - 1][1] - TIE]

    def bm25(self, terms: list[str], rows: np.ndarray) -> np.ndarray:
        from qdrant_edge import Filter, HasIdCondition, TextQuery

        if not terms or not len(rows):
            return np.zeros(len(rows), np.float32)
        where = Filter(must=[HasIdCondition(self._ids(rows))])
        return self._by_row(self._query(TextQuery("t", " ".join(terms)), len(rows), where), rows, 0.0)
