"""The index on a Qdrant server: the same vectors as the FAISS folder, in one collection per model.

A server or cluster (`--qdrant-url`, key from $QA_QDRANT_API_KEY). `connect(path=DIR)` opens the
client's local mode instead, which stands in for a server in tests only: `--qdrant-path` runs
Qdrant Edge (embeddings/edge.py). The vectors are read into memory at start and ranked there, as
the FAISS folder's are. The collection is named after the model's identity as
the FAISS folder is (`all-minilm-l6-v2-53aa51172d14`). Each window of a transcript is one point:

    vector "dense"    its unit vector; cosine distance
    payload           source (the file's key), sha256 (of its text), file (the two together),
                      row (the window's row within its file), start, end (its span in the file),
                      and for a window of one sentence "tokens": that sentence's token vectors,
                      what MaxSim reads, as base64 of little-endian float16. Not a multivector:
                      they are only read back, and as lists of numbers they took 4.3 GB of memory
                      and 728 MiB on disk at 100x the interview in the embedded mode, against
                      1.2 GB and 264 MiB as bytes (bench/backends.py).

One more point, with no vector, is the record of what is indexed: format version, model, dimension,
and each file with its hash, rows and sentences. A sync writes the points of new and changed files,
then the record, then deletes the points of files the record no longer lists. A sync cut short
leaves the previous record and every point it lists: the next start finds the unfinished files not
indexed and embeds them again. Points the record does not list are never read or returned.
"""

from __future__ import annotations

import atexit
import base64
import hashlib
import sys
import threading
import uuid
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from embeddings.index import FORMAT_VERSION, FileEntry, IndexUnusable, Source, Stored, model_folder

BATCH = 256  # points per upsert
NAMESPACE = uuid.UUID("6f1c0a52-2b9e-4d0e-9a57-0c8f1d2e3b4a")  # of our point ids
RECORD_ID = str(uuid.uuid5(NAMESPACE, "record"))
TIMEOUT = 10  # seconds per request to a server


class BackendUnavailable(ConnectionError):
    """The index server cannot be reached or refused the request; the message says which and why."""


def _reason(e: BaseException) -> str:
    """One line for an error of the client, whose messages run over several."""
    text = " ".join(str(e).split()) or type(e).__name__
    return text[:300]


_clients: dict[str, object] = {}  # one per server or folder: the embedded mode locks its folder


def connect(url: str | None = None, path: Path | None = None, api_key: str | None = None):
    """A client for a server at `url`, or embedded in this process with its data in `path`.
    Raises BackendUnavailable naming the URL or folder when it cannot be used."""
    from qdrant_client import QdrantClient

    where = url or str(Path(path).resolve())
    if where in _clients:
        return _clients[where]
    try:
        if url:
            if api_key and url.startswith("http://"):
                print(f"warning: the Qdrant API key goes to {url} unencrypted; use https", file=sys.stderr)
            with warnings.catch_warnings():  # the client's own, two lines long, said above in one
                warnings.simplefilter("ignore")
                # No version check: it runs in a thread of its own and warns at a random moment.
                client = QdrantClient(url=url, api_key=api_key, timeout=TIMEOUT, check_compatibility=False)
        else:
            Path(path).mkdir(parents=True, exist_ok=True)
            client = OneAtATime(QdrantClient(path=str(path)))
        atexit.register(client.close)  # before the interpreter tears down what close needs
        client.get_collections()
    except Exception as e:  # noqa: BLE001 - httpx, grpc, the lock of the embedded mode, HTTP errors
        what = "the Qdrant server at" if url else "the Qdrant folder"
        fix = "" if url else (
            "; if no other process is using it, the folder is damaged: delete it, and the index is "
            "rebuilt from the transcripts on the next start"
        )  # fmt: skip
        raise BackendUnavailable(f"cannot use {what} {where}: {_reason(e)}{fix}") from None
    _clients[where] = client
    return client


class OneAtATime:
    """The embedded client, called from several threads (the watcher saves while requests
    search): its in-memory arrays are not safe to read while they grow, so calls take turns."""

    def __init__(self, client) -> None:
        self._client, self._lock = client, threading.Lock()

    def __getattr__(self, name: str):
        attr = getattr(self._client, name)
        if not callable(attr):
            return attr

        def call(*args, **kwargs):
            with self._lock:
                return attr(*args, **kwargs)

        return call


def pack(tokens: np.ndarray) -> str:
    return base64.b64encode(np.ascontiguousarray(tokens, "<f2").tobytes()).decode("ascii")


def unpack(text: str, dim: int) -> np.ndarray:
    try:
        data = base64.b64decode(text, validate=True) if text else b""
    except (ValueError, TypeError):
        raise IndexUnusable("token vectors that are not base64") from None
    if len(data) % (2 * dim):
        raise IndexUnusable(f"token vectors of {len(data)} bytes are not rows of {dim} float16 values")
    return np.frombuffer(data, "<f2").astype(np.float16).reshape(-1, dim)


def file_id(key: str, sha256: str) -> str:
    return hashlib.sha256(f"{key}\0{sha256}".encode()).hexdigest()[:32]


def point_id(file: str, row: int) -> str:
    return str(uuid.uuid5(NAMESPACE, f"{file}/{row}"))


def check_record(store: object, record: dict, model: dict) -> None:
    """A stored record of another format or model is not ours to search (both Qdrant backends)."""
    if record["format_version"] != FORMAT_VERSION:
        raise IndexUnusable(f"{store} has format {record['format_version']}, not {FORMAT_VERSION}")
    if record["model"] != model:
        built = record["model"].get("name")
        raise IndexUnusable(f"{store} was built with model {built}, not {model['name']}")


class QdrantStore:
    """A `Backend` (embeddings/index.py) in a Qdrant collection."""

    def __init__(
        self, client, model: dict[str, str], where: str, namespace: str = "", embedded: bool = False
    ) -> None:
        self.client, self.model, self.where, self.embedded = client, model, where, embedded
        slug = model_folder(Path(), model).name
        self.name = f"{namespace}-{slug}" if namespace else slug
        self._present: set[str] = set()  # files (file_id) whose points are all in the collection

    def __str__(self) -> str:
        return f"Qdrant collection {self.name} at {self.where}"

    @contextmanager
    def _reach(self) -> Iterator[None]:
        """Errors of the client, whatever its transport, as BackendUnavailable."""
        try:
            yield
        except (IndexUnusable, BackendUnavailable):
            raise
        except Exception as e:  # noqa: BLE001 - httpx, grpc and HTTP status errors alike
            raise BackendUnavailable(f"Qdrant at {self.where}: {_reason(e)}") from None

    def problem(self) -> str | None:
        """Why the index cannot be searched now, or None."""
        try:
            with self._reach():
                self.client.collection_exists(self.name)
        except BackendUnavailable as e:
            return str(e)
        return None

    def has_files(self) -> bool:
        with self._reach():
            return self.client.collection_exists(self.name)

    def _record(self) -> dict:
        with self._reach():
            found = self.client.retrieve(self.name, [RECORD_ID], with_payload=True, with_vectors=False)
        if not found:
            raise IndexUnusable(f"{self} holds no record of what is indexed")
        return found[0].payload or {}

    def _fits(self, dim: int) -> str | None:
        """Why the collection's configuration is not ours, or None."""
        from qdrant_client import models

        with self._reach():
            vectors = self.client.get_collection(self.name).config.params.vectors
        if not isinstance(vectors, dict) or set(vectors) != {"dense"}:
            return "its vectors are not one named dense"
        if vectors["dense"].size != dim:
            return f"its vectors have {vectors['dense'].size} dimensions, not {dim}"
        if vectors["dense"].distance != models.Distance.COSINE:
            return "its distance is not cosine"
        return None

    def load(self) -> Stored:
        self._present = set()
        if not self.has_files():
            raise IndexUnusable(f"no collection {self.name} at {self.where}")
        record = self._record()
        try:
            check_record(self, record, self.model)
            dim = int(record["dim"])
            files = {k: FileEntry(sha, int(rows), int(n)) for k, sha, rows, n, _ in record["files"]}
            token_totals = {k: int(n) for k, *_, n in record["files"]}
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            raise IndexUnusable(f"the record in {self} is malformed ({e})") from None
        why = self._fits(dim)
        if why:
            raise IndexUnusable(f"{self} is not an index of this format: {why}")
        stored = self._read(files, dim, token_totals)
        with self._reach():  # a sync cut short after its record leaves points no record lists
            if self.client.count(self.name, exact=True).count > len(stored.vectors) + 1:
                self._drop_unlisted(self._present)
        return stored

    def _read(self, files: dict[str, FileEntry], dim: int, token_totals: dict[str, int]) -> Stored:
        """Every point the record lists, put back in row order; IndexUnusable if one is missing."""
        owner = {file_id(k, e.sha256): k for k, e in files.items()}
        start, row, passage = {}, 0, 0
        for key, entry in files.items():
            start[key] = (row, passage)
            row, passage = row + entry.rows, passage + entry.passages
        vectors = np.zeros((row, dim), np.float32)
        seen = np.zeros(row, bool)
        tokens: list[np.ndarray | None] = [None] * passage
        offset = None
        while True:
            with self._reach():
                points, offset = self.client.scroll(
                    self.name, limit=BATCH, offset=offset, with_payload=True, with_vectors=["dense"]
                )
            for p in points:
                key = owner.get((p.payload or {}).get("file"))
                if key is None:
                    continue  # the record, or a file it no longer lists
                r = int(p.payload["row"])
                if not 0 <= r < files[key].rows:
                    raise IndexUnusable(f"{self} holds a row {r} of {key}, which has {files[key].rows}")
                at = start[key][0] + r
                vectors[at] = p.vector["dense"]
                seen[at] = True
                if r < files[key].passages:  # a window of one sentence: its tokens
                    tokens[start[key][1] + r] = unpack(p.payload.get("tokens", ""), dim)
            if offset is None:
                break
        if not seen.all():
            missing = sorted({k for k, (a, _) in start.items() if not seen[a : a + files[k].rows].all()})
            raise IndexUnusable(f"{self} is missing points of {', '.join(missing)} (an interrupted sync)")
        counts = np.array([len(t) for t in tokens], np.int32)
        for key, (_, p0) in start.items():
            if int(counts[p0 : p0 + files[key].passages].sum()) != token_totals[key]:
                raise IndexUnusable(f"{self} is missing token vectors of {key}")
        flat = np.concatenate(tokens) if tokens else np.zeros((0, dim), np.float16)
        self._present = set(owner)
        return Stored(self.model, dim, files, vectors, flat.reshape(-1, dim), counts)

    def save(self, stored: Stored, sources: dict[str, Source] | None = None) -> None:
        """Upload the files the collection does not hold whole, then the record, then drop the
        points of files no longer listed. Raises BackendUnavailable (an OSError) when it cannot."""
        with self._reach():
            self._prepare(stored.dim)
            parts = stored.parts()
            listed = []
            for key, entry in stored.files.items():
                fid = file_id(key, entry.sha256)
                vectors, tokens, counts = parts[key]
                listed.append([key, entry.sha256, entry.rows, entry.passages, int(counts.sum())])
                if fid not in self._present:
                    spans = sources[key].spans() if sources and key in sources else None
                    self._upload(key, entry.sha256, fid, vectors, tokens, counts, spans)
            self._write_record(stored, listed)
            self._drop_unlisted({file_id(k, sha) for k, sha, *_ in listed})
            self._present = {file_id(k, sha) for k, sha, *_ in listed}

    def _prepare(self, dim: int) -> None:
        """The collection, created, or created anew when it was made for another format."""
        from qdrant_client import models

        if self.client.collection_exists(self.name):
            why = self._fits(dim)
            try:
                record = self._record()
                why = why or ("another format" if record.get("format_version") != FORMAT_VERSION else None)
                why = why or ("another model" if record.get("model") != self.model else None)
            except IndexUnusable:
                pass  # a collection whose first sync was cut short: its points are ours
            if not why:
                return
            self.client.delete_collection(self.name)
        self._present = set()
        self.client.create_collection(
            self.name,
            # No graph (m=0): searched exactly, as FAISS's flat index is, so the answers are the same.
            vectors_config={
                "dense": models.VectorParams(
                    size=dim, distance=models.Distance.COSINE, hnsw_config=models.HnswConfigDiff(m=0)
                )
            },
        )  # fmt: skip
        if not self.embedded:
            self.client.create_payload_index(self.name, "file", models.PayloadSchemaType.KEYWORD)

    def _upload(self, key, sha256, fid, vectors, tokens, counts, spans) -> None:
        from qdrant_client import models

        starts = np.concatenate([[0], np.cumsum(counts)])
        points = []
        for row, vector in enumerate(vectors):
            payload = {"source": key, "sha256": sha256, "file": fid, "row": row}
            if row < len(counts):
                payload["tokens"] = pack(tokens[starts[row] : starts[row + 1]])
            if spans is not None:
                payload["start"], payload["end"] = spans[row]
            dense = {"dense": vector.tolist()}
            points.append(models.PointStruct(id=point_id(fid, row), vector=dense, payload=payload))
            if len(points) == BATCH:
                self.client.upsert(self.name, points, wait=True)
                points = []
        if points:
            self.client.upsert(self.name, points, wait=True)

    def _write_record(self, stored: Stored, listed: list) -> None:
        from qdrant_client import models

        record = {"format_version": FORMAT_VERSION, "model": stored.model, "dim": stored.dim,
                  "count": int(len(stored.vectors)), "files": listed}  # fmt: skip
        point = models.PointStruct(id=RECORD_ID, vector={}, payload=record)
        self.client.upsert(self.name, [point], wait=True)

    def _drop_unlisted(self, keep: set[str]) -> None:
        from qdrant_client import models

        stale = models.Filter(
            must_not=[models.HasIdCondition(has_id=[RECORD_ID]),
                      models.FieldCondition(key="file", match=models.MatchAny(any=sorted(keep)))]
        )  # fmt: skip
        self.client.delete(self.name, points_selector=models.FilterSelector(filter=stale), wait=True)

    def searchable(self, stored: Stored) -> QdrantSearch:
        return QdrantSearch(self, stored)

    def signals(self, stored: Stored) -> None:
        """None: MaxSim and BM25 are ranked in memory over what `load` read (qa/retrieve.py)."""
        return None

    def whole(self, stored: Stored) -> Stored:
        return stored

    def saved(self, stored: Stored) -> Stored:
        return stored


class QdrantSearch:
    """FAISS's search signature over the collection: rows of `stored`, nearest by cosine."""

    def __init__(self, store: QdrantStore, stored: Stored) -> None:
        self.store = store
        self.ntotal = len(stored.vectors)
        self.start, row = {}, 0
        for key, entry in stored.files.items():
            self.start[file_id(key, entry.sha256)] = row
            row += entry.rows

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        from qdrant_client import models

        scores = np.full((len(queries), k), -np.inf, np.float32)
        rows = np.full((len(queries), k), -1, np.int64)
        store = self.store
        exact = None if store.embedded else models.SearchParams(exact=True)  # embedded mode is always exact
        for i, query in enumerate(queries):
            limit = k
            while True:  # points of files being replaced are passed over, so ask for more when met
                with store._reach():
                    found = store.client.query_points(
                        store.name, query=query.tolist(), using="dense", limit=limit,
                        with_payload=["file", "row"], search_params=exact,
                    ).points  # fmt: skip
                ours = [(p.score, self.start[p.payload["file"]] + int(p.payload["row"]))
                        for p in found if p.payload and p.payload.get("file") in self.start]  # fmt: skip
                if len(ours) >= k or len(found) < limit:
                    break
                limit *= 4
            for j, (score, row) in enumerate(ours[:k]):
                scores[i, j], rows[i, j] = score, row
        return scores, rows
