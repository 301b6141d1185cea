"""The index on a Qdrant server (embeddings/qdrant.py, `--qdrant-url`): what the FAISS folder does, it does.

No server runs here: the client's own local mode (`QdrantClient(path=...)`) stands in for one.
Stored, searched, synced and cut short as the FAISS folder is in test_index.py; unreachable at
start and while serving. Killed mid-sync and held by another process: test_edge.py, on Qdrant Edge,
which is what `--qdrant-path` runs.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from conftest import (
    INTERVIEW,
    ROOT,
    FakeEmbedder,
    env_for_subprocess,
    free_port,
    read_exact,
)
from qdrant_client import QdrantClient, models
from test_folder import PODCAST, SRT, VTT, engine, rows

from embeddings import index as store
from embeddings import qdrant
from embeddings.qdrant import RECORD_ID, BackendUnavailable, QdrantStore, connect
from qa.answer import Answer, Quote
from qa.engine import Engine, QuestionError

# connect() leaves the client's version check to a thread of its own, which warns, late, when the
# server it was pointed at does not answer.
pytestmark = pytest.mark.filterwarnings("ignore:Failed to obtain server version:UserWarning")

FAKE = FakeEmbedder().identity
MODEL = {"name": "m", "weights_sha256": "ab" * 32}
QUESTIONS = [
    "Is NATO a party to this war?",
    "Who repairs the cranes?",
    "Caspian Sea water levels falling drought",
    "What do you cook at home?",
    "Frost in April destroyed the grape harvest",
]


NOTES = """Notes from the harbour office

Ada Stone: What ships come in during winter?
Ben Cole: Mostly grain carriers from Odesa. Ice closes the northern berths in January.
Ada Stone: Who repairs the cranes?
Ben Cole: A crew from Gdansk repairs the cranes every spring.
"""


def transcripts(tmp_path: Path, first: str, text: str) -> Path:
    """The folder of test_folder.py: a podcast and a subtitle file in a subfolder, beside `first`."""
    data = tmp_path / "data"
    (data / "more").mkdir(parents=True)
    (data / first).write_text(text, encoding="utf-8")
    (data / "more" / "podcast.md").write_text(PODCAST, encoding="utf-8")
    (data / "more" / "field.vtt").write_text(VTT, encoding="utf-8")
    return data


@pytest.fixture
def data(tmp_path: Path) -> Path:
    """With the interview: enough windows that FAISS and Qdrant choose among candidates."""
    return transcripts(tmp_path, "interview.txt", read_exact(INTERVIEW))


@pytest.fixture
def small(tmp_path: Path) -> Path:
    """With a short transcript for the interview: a sync that uploads every point takes a
    fraction of a second, not two (the embedded client commits each point to SQLite)."""
    return transcripts(tmp_path, "notes.txt", NOTES)


def embedded(path: Path):
    """The Engine's backend for the stand-in server: the client's local mode, its data in `path`."""
    return lambda _index_dir, model: QdrantStore(connect(path=path), model, str(path), embedded=True)


def release(path: Path) -> None:
    client = qdrant._clients.pop(str(path.resolve()), None)
    if client is not None:
        client.close()


@pytest.fixture
def qdir(tmp_path: Path) -> Iterator[Path]:
    """An embedded Qdrant folder, let go of at the end so that no client outlives its test."""
    path = tmp_path / "qdrant"
    yield path
    release(path)


def at(path: Path, model: dict[str, str] = FAKE, namespace: str = "") -> QdrantStore:
    return QdrantStore(connect(path=path), model, str(path), namespace, embedded=True)


def unit(n: int, dim: int, seed: int) -> np.ndarray:
    v = np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def random_stored(files: dict[str, tuple[int, int]], dim: int = 16, seed: int = 0) -> store.Stored:
    """Random unit vectors for files of (rows, passages); each passage has 0 to 4 token vectors."""
    n_rows = sum(r for r, _ in files.values())
    counts = np.random.default_rng(seed).integers(0, 5, sum(p for _, p in files.values())).astype(np.int32)
    counts[0] = 0  # a passage without token vectors is stored as one without
    entries = {k: store.FileEntry(f"{i:02x}" * 32, r, p) for i, (k, (r, p)) in enumerate(files.items())}
    tokens = unit(int(counts.sum()), dim, seed + 1).astype(np.float16)
    return store.Stored(MODEL, dim, entries, unit(n_rows, dim, seed), tokens, counts)


def only(stored: store.Stored, keep: list[str]) -> store.Stored:
    """`stored` without the files not in `keep`: what a sync makes of it once they are deleted."""
    parts = stored.parts()
    v, t, c = (np.concatenate([parts[k][i] for k in keep]) for i in range(3))
    return store.Stored(stored.model, stored.dim, {k: stored.files[k] for k in keep}, v, t, c)


def assert_same(back: store.Stored, stored: store.Stored) -> None:
    """Equal but for float32 rounding of the vectors: Qdrant normalises cosine vectors again."""
    assert back.model == stored.model and back.dim == stored.dim and back.files == stored.files
    assert back.vectors.dtype == np.float32 and back.vectors.shape == stored.vectors.shape
    np.testing.assert_allclose(back.vectors, stored.vectors, rtol=0, atol=1e-6)
    assert back.tokens.dtype == np.float16 and back.tokens.shape == stored.tokens.shape
    assert np.array_equal(back.tokens.view(np.uint16), stored.tokens.view(np.uint16))  # the same bits
    assert back.token_counts.dtype == np.int32 and back.token_counts.tolist() == stored.token_counts.tolist()


def count(s: QdrantStore, **payload: str) -> int:
    """Points of the collection whose payload has these values; without any, all of them (the record too)."""
    must = [models.FieldCondition(key=k, match=models.MatchValue(value=v)) for k, v in payload.items()]
    where = models.Filter(must=must) if must else None
    return s.client.count(s.name, count_filter=where, exact=True).count


def sha(path: Path) -> str:
    return store.sha256_bytes(read_exact(path).encode("utf-8"))


def shown(answer: Answer) -> list[Quote]:
    """The quotes, or the closest passage of a refusal."""
    return [*answer.quotes, *([answer.closest] if answer.closest else [])]


def verbatim(answer: Answer) -> Answer:
    """Every passage shown is the file on disk at its offsets (sources are relative to the cwd)."""
    assert shown(answer), answer
    for q in shown(answer):
        assert read_exact(q.source)[q.start : q.end] == q.text, q
    return answer


def assert_answers_as_faiss(e: Engine, faiss: Engine) -> None:
    """The same passages, verbatim, with the same scores to their rounding, for every question."""
    for question in QUESTIONS:
        ours, theirs = verbatim(e.ask(question, 3)), verbatim(faiss.ask(question, 3))
        assert ours.answered == theirs.answered, question
        assert [(q.source, q.start, q.end) for q in shown(ours)] == [
            (q.source, q.start, q.end) for q in shown(theirs)
        ], question
        assert [q.score for q in shown(ours)] == pytest.approx([q.score for q in shown(theirs)], abs=2e-4)


CHANGED_PODCAST = PODCAST.replace("every year", "each year")


def change(data: Path) -> None:
    """One file changed, one added, one deleted; one left alone."""
    (data / "more" / "podcast.md").write_text(CHANGED_PODCAST, encoding="utf-8")
    (data / "extra.srt").write_text(SRT, encoding="utf-8")
    (data / "more" / "field.vtt").unlink()


def changed(unchanged: str = "notes.txt") -> dict[str, list[str]]:
    """The report of a sync after `change`."""
    return {"added": ["extra.srt"], "changed": ["more/podcast.md"], "removed": ["more/field.vtt"],
            "unchanged": [unchanged]}  # fmt: skip


def report_of(e: Engine) -> dict[str, list[str]]:
    return {k: getattr(e.report, k) for k in ("added", "changed", "removed", "unchanged")}


def new_rows() -> int:
    return rows(CHANGED_PODCAST, "p.md") + rows(SRT, "s.srt")


def assert_holds_exactly(s: QdrantStore, e: Engine) -> None:
    """The collection holds the record and the points of the files indexed now, nothing else."""
    assert count(s) == e.report.windows + 1
    for key, entry in e.state.stored.files.items():
        assert count(s, source=key, sha256=entry.sha256) == entry.rows == count(s, source=key), key
    assert count(s, source="more/field.vtt") == 0


# --- the store: what goes in comes out, and is found as FAISS finds it ------------------------------


def test_round_trip(qdir):
    """What is loaded is what was saved, token vectors to the bit, a passage without tokens too."""
    s = random_stored({"a.txt": (5, 3), "b.txt": (4, 2)})
    assert s.token_counts[0] == 0 and s.token_counts.sum() > 0
    at(qdir, MODEL).save(s)
    assert_same(at(qdir, MODEL).load(), s)  # a new store: nothing remembered but the collection
    empty = store.Stored(MODEL, 16, {}, np.zeros((0, 16), np.float32), np.zeros((0, 16), np.float16),
                         np.zeros(0, np.int32))  # fmt: skip
    at(qdir, MODEL, "empty").save(empty)
    back = at(qdir, MODEL, "empty").load()
    assert_same(back, empty)
    assert back.parts() == {}


def test_search_finds_what_faiss_finds_and_never_an_unlisted_file(qdir, monkeypatch):
    """Same rows, same scores; the points of a file the record no longer lists are passed over,
    even when they are the nearest (a sync killed before it deleted them leaves such points)."""
    s = at(qdir, MODEL)
    full = random_stored({"a.txt": (30, 12), "b.txt": (25, 10), "c.txt": (20, 8)}, seed=3)
    s.save(full)
    queries = unit(6, 16, seed=9)
    for k in (1, 10, 75):
        scores, found = s.searchable(s.load()).search(queries, k)
        expected_scores, expected = store.to_faiss(full.vectors).search(queries, k)
        assert found.tolist() == expected.tolist()
        np.testing.assert_allclose(scores, expected_scores, rtol=0, atol=1e-5)
    kept = only(full, ["a.txt", "c.txt"])
    monkeypatch.setattr(QdrantStore, "_drop_unlisted", lambda self, keep: None)
    s.save(kept)
    assert count(s, source="b.txt") == 25 and count(s) == 75 + 1  # b's points are still there
    back = s.load()
    assert_same(back, kept)
    queries = np.concatenate([full.vectors[30:55:5], unit(3, 16, seed=11)])  # b's own vectors first
    for k in (1, 5, 50):
        scores, found = s.searchable(back).search(queries, k)
        expected_scores, expected = store.to_faiss(kept.vectors).search(queries, k)
        assert found.tolist() == expected.tolist() and found.min() >= 0 and found.max() < 50
        np.testing.assert_allclose(scores, expected_scores, rtol=0, atol=1e-5)


# --- the engine on Qdrant: a folder synced file by file ---------------------------------------------


def test_incremental_sync_as_faiss_does(tmp_path, data, qdir):
    """Added, changed, removed and unchanged as on FAISS; only what changed is embedded; what
    was deleted is gone from the collection; the answers are FAISS's."""
    first = engine(tmp_path, data, backend=embedded(qdir))
    assert first.report.embedded_windows == first.report.windows
    change(data)
    fake = FakeEmbedder()
    e = engine(tmp_path, data, embedder=fake, backend=embedded(qdir))
    assert report_of(e) == changed("interview.txt") and e.report.saved
    assert e.report.embedded_windows == sum(fake.calls) == new_rows()
    assert_holds_exactly(at(qdir), e)
    assert count(at(qdir), source="more/podcast.md", sha256=store.sha256_bytes(PODCAST.encode())) == 0
    faiss = engine(tmp_path, data)
    assert faiss.report.added == ["extra.srt", "interview.txt", "more/podcast.md"]
    assert faiss.report.windows == e.report.windows
    assert_answers_as_faiss(e, faiss)
    again = engine(tmp_path, data, embedder=(fake := FakeEmbedder()), backend=embedded(qdir))
    assert again.report.embedded_windows == sum(fake.calls) == 0 and len(again.report.unchanged) == 3
    assert_same(at(qdir).load(), e.state.stored)


def test_a_save_cut_short_before_the_record_keeps_the_previous_one(tmp_path, small, qdir, monkeypatch):
    """The record is written after the points: a save that fails before it leaves the last
    complete index, and the next start embeds again only what that save had not finished."""
    before = engine(tmp_path, small, backend=embedded(qdir)).state.stored
    change(small)
    podcast = small / "more" / "podcast.md"
    logs: list[str] = []

    def cut(self, stored, listed) -> None:
        raise BackendUnavailable(f"Qdrant at {self.where}: cut short before the record")

    with monkeypatch.context() as m:
        m.setattr(QdrantStore, "_write_record", cut)
        cut_short = engine(tmp_path, small, backend=embedded(qdir), logs=logs)
    assert not cut_short.report.saved and any("cut short" in line for line in logs)
    verbatim(cut_short.ask(QUESTIONS[1]))  # served from memory meanwhile
    s = at(qdir)
    assert count(s, source="more/podcast.md", sha256=sha(podcast)) > 0  # its points went in
    assert_same(s.load(), before)  # but nothing vouches for them
    fake = FakeEmbedder()
    e = engine(tmp_path, small, embedder=fake, backend=embedded(qdir))
    assert report_of(e) == changed() and e.report.embedded_windows == sum(fake.calls) == new_rows()
    assert_holds_exactly(s, e)
    assert_same(s.load(), e.state.stored)
    assert_answers_as_faiss(e, engine(tmp_path, small))


def test_a_view_that_was_not_saved_is_never_searched_in_the_collection(tmp_path, small, qdir, monkeypatch):
    """Served from memory after a failed save, a view stays searchable whole when a refresh
    finds nothing to embed (a file touched, its text the same)."""
    e = engine(tmp_path, small, backend=embedded(qdir))
    (small / "extra.srt").write_text(SRT, encoding="utf-8")

    def down(self, *args) -> None:
        raise BackendUnavailable(f"Qdrant at {self.where}: down")

    with monkeypatch.context() as m:
        m.setattr(QdrantStore, "_upload", down)
        assert e.refresh() == ["extra.srt"] and not e.report.saved
    notes = small / "notes.txt"
    mtime = notes.stat().st_mtime_ns + 1_000_000_000
    os.utime(notes, ns=(mtime, mtime))
    assert e.refresh() == ["notes.txt"] and e.report.embedded_windows == 0
    assert list(e.state.stored.files)[0] == "extra.srt"  # its rows come first
    start, end = 0, e.state.stored.files["extra.srt"].rows
    _, found = e.index.search(e.vectors[start:end], 1)
    assert found.ravel().tolist() == list(range(start, end))


@pytest.mark.parametrize(
    "damage, why",
    [
        ("format", f"has format {store.FORMAT_VERSION - 1}, not {store.FORMAT_VERSION}"),
        ("model", "was built with model other"),
        ("size", "its vectors have 16 dimensions, not 32"),
        ("unnamed", "not one named dense"),
    ],
)
def test_a_collection_of_another_format_is_rebuilt_not_used(tmp_path, small, qdir, damage, why):
    """A record of another format or model, or vectors of another size or kind: not loaded,
    and the next sync makes the collection anew from every file."""
    engine(tmp_path, small, backend=embedded(qdir))
    s = at(qdir)
    record = s.client.retrieve(s.name, [RECORD_ID], with_payload=True)[0].payload
    if damage == "format":
        s.client.set_payload(s.name, {"format_version": store.FORMAT_VERSION - 1}, points=[RECORD_ID])
    elif damage == "model":
        s.client.set_payload(s.name, {"model": {"name": "other", "weights_sha256": "00" * 32}}, [RECORD_ID])
    else:
        s.client.delete_collection(s.name)
        if damage == "size":
            vectors = {"dense": models.VectorParams(size=16, distance=models.Distance.COSINE)}
        else:
            vectors = models.VectorParams(size=32, distance=models.Distance.COSINE)
        s.client.create_collection(s.name, vectors_config=vectors)
        s.client.upsert(s.name, [models.PointStruct(id=RECORD_ID, vector={}, payload=record)])
    with pytest.raises(store.IndexUnusable, match=re.escape(why)):
        s.load()
    logs: list[str] = []
    fake = FakeEmbedder()
    e = engine(tmp_path, small, embedder=fake, logs=logs, backend=embedded(qdir))
    assert any("rebuilding the index" in line and why in line for line in logs), logs
    assert e.report.added == ["more/field.vtt", "more/podcast.md", "notes.txt"]
    assert e.report.embedded_windows == e.report.windows == sum(fake.calls)
    assert_same(s.load(), e.state.stored)
    assert count(s) == e.report.windows + 1
    assert s.client.get_collection(s.name).config.params.vectors["dense"].size == 32
    assert_answers_as_faiss(e, engine(tmp_path, small))


# --- killed, refused, unreachable ---------------------------------------------------------------------


def run(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, cwd=ROOT,
                          env=env_for_subprocess(tmp_path), timeout=120)  # fmt: skip


def test_connect_names_what_it_cannot_use(tmp_path):
    """An unreachable server or an unusable folder: BackendUnavailable, an OSError, naming it."""
    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(BackendUnavailable, match=re.escape(f"the Qdrant server at {url}: ")) as e:
        connect(url=url)
    assert isinstance(e.value, OSError) and "\n" not in str(e.value)


@pytest.mark.integration
@pytest.mark.parametrize("program", [["-m", "qa", "index", "--json"], ["app.py", "--port", "0"]])
def test_an_unreachable_server_at_start_exits_2_with_one_line(tmp_path, program):
    """Before any model is loaded: exit 2 and one line that names the server."""
    url = f"http://127.0.0.1:{free_port()}"
    r = run(tmp_path, *program, "--data", str(INTERVIEW), "--backend", "qdrant", "--qdrant-url", url)
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and f"the Qdrant server at {url}: " in lines[0]
    assert not r.stdout


def test_unreachable_while_serving_then_back_without_a_restart(tmp_path, qdir):
    """A server gone while the app runs: 503 from /api/ask and /healthz, naming it; back: 200."""
    from fastapi.testclient import TestClient

    import app

    interview = shutil.copy(INTERVIEW, tmp_path)  # in the working directory: quotes name it so
    e = Engine(interview, tmp_path / "index", embedder=FakeEmbedder(), progress=False, log=lambda m: None,
               backend=embedded(qdir))  # fmt: skip
    question = "Is NATO a party to this war?"
    served = verbatim(e.ask(question)).to_dict()
    s, url = e.backend, f"http://127.0.0.1:{free_port()}"
    web_app = app.build_app(e, feedback=tmp_path / "feedback.jsonl", allowed_hosts=["testserver"])
    with TestClient(web_app) as web:
        assert web.get("/healthz").status_code == 200
        assert web.get("/api/ask", params={"q": question}).json() == served
        held = s.client, s.where
        down = QdrantClient(url=url, timeout=1, check_compatibility=False)
        s.client, s.where = down, url  # the store as it is for a server, which has gone
        try:
            with pytest.raises(QuestionError) as refused:
                e.ask(question)
            assert refused.value.status == 503 and url in str(refused.value)
            r = web.get("/api/ask", params={"q": question})
            assert r.status_code == 503 and r.json()["question"] == question and url in r.json()["error"]
            r = web.get("/healthz")
            assert r.status_code == 503 and r.json()["status"] == "unavailable" and url in r.json()["error"]
        finally:
            s.client, s.where = held
            down.close()
        assert web.get("/healthz").json()["status"] == "ok"
        r = web.get("/api/ask", params={"q": question})
        assert r.status_code == 200 and r.json() == served
