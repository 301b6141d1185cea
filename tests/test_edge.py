"""The index in Qdrant Edge (embeddings/edge.py): what the FAISS folder does, it does, and the
engine computes the three signals.

Stored, searched, synced, cut short and killed as the FAISS folder is in test_index.py and
test_faults.py; a second process, a shard lost while serving. The folder checks of test_folder.py
run on this backend too (its `backend` fixture).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from conftest import INTERVIEW, ROOT, FakeEmbedder, env_for_subprocess, kill_when_paused, read_exact
from test_folder import SRT, embedded, engine, release, rows
from test_qdrant import (
    FAKE,
    MODEL,
    NOTES,
    QUESTIONS,
    assert_answers_as_faiss,
    change,
    changed,
    new_rows,
    only,
    random_stored,
    report_of,
    run,
    sha,
    transcripts,
    unit,
    verbatim,
)

from embeddings import edge
from embeddings import index as store
from embeddings.edge import RECORD_ID, EdgeStore
from embeddings.qdrant import BackendUnavailable
from qa.engine import Engine, QuestionError
from qa.retrieve import InMemory, Ranker


@pytest.fixture
def data(tmp_path: Path) -> Path:
    """With the interview: enough windows that the candidates are a choice."""
    return transcripts(tmp_path, "interview.txt", read_exact(INTERVIEW))


@pytest.fixture
def small(tmp_path: Path) -> Path:
    return transcripts(tmp_path, "notes.txt", NOTES)


@pytest.fixture
def qdir(tmp_path: Path) -> Iterator[Path]:
    """A Qdrant Edge folder, let go of at the end so that no shard outlives its test."""
    path = tmp_path / "qdrant"
    yield path
    release(path)


def at(path: Path, model: dict[str, str] = FAKE, namespace: str = "") -> EdgeStore:
    return EdgeStore(edge.connect(path), model, namespace)


def assert_same(s: EdgeStore, stored: store.Stored) -> None:
    """What the shard holds, read back whole, is `stored` (float32 rounding of the vectors aside)."""
    loaded = s.load()
    assert loaded.held == frozenset(loaded.files) and len(loaded.vectors) == 0  # nothing in memory
    back = s.whole(loaded)
    assert back.model == stored.model and back.dim == stored.dim and back.files == stored.files
    np.testing.assert_allclose(back.vectors, stored.vectors, rtol=0, atol=1e-6)
    assert back.tokens.dtype == np.float16 and back.tokens.shape == stored.tokens.shape
    assert np.array_equal(back.tokens.view(np.uint16), stored.tokens.view(np.uint16))  # the same bits
    assert back.token_counts.tolist() == stored.token_counts.tolist()


def count(s: EdgeStore, **payload: str) -> int:
    """Points whose payload has these values; without any, all of them (the record too)."""
    from qdrant_edge import CountRequest, FieldCondition, Filter, MatchValue

    must = [FieldCondition(k, match=MatchValue(v)) for k, v in payload.items()]
    s._open()
    return s.shard.count(CountRequest(exact=True, filter=Filter(must=must) if must else None))


def assert_holds_exactly(s: EdgeStore, e: Engine) -> None:
    """The shard holds the record and the points of the files indexed now, nothing else."""
    assert count(s) == e.report.windows + 1
    for key, entry in e.state.stored.files.items():
        assert (
            count(s, source=key, file=edge.file_id(key, entry.sha256)) == entry.rows == count(s, source=key)
        )
    assert count(s, source="more/field.vtt") == 0


# --- the store and its signals ------------------------------------------------------------------------


def test_round_trip(qdir):
    """What is saved comes back, token vectors to the bit, a passage without tokens too."""
    s = random_stored({"a.txt": (5, 3), "b.txt": (4, 2)})
    assert s.token_counts[0] == 0 and s.token_counts.sum() > 0
    at(qdir, MODEL).save(s)
    assert_same(at(qdir, MODEL), s)  # a new store: nothing remembered but the shard
    empty = store.Stored(MODEL, 16, {}, np.zeros((0, 16), np.float32), np.zeros((0, 16), np.float16),
                         np.zeros(0, np.int32))  # fmt: skip
    at(qdir, MODEL, "empty").save(empty)
    assert_same(at(qdir, MODEL, "empty"), empty)


def test_signals_are_those_computed_in_memory_and_never_of_an_unlisted_file(qdir, monkeypatch):
    """Nearest rows, cosines, each query token's best match, BM25: as InMemory computes them from
    the arrays, within float rounding; points of a file the record no longer lists are never
    returned (a sync killed before it deleted them leaves such points)."""
    s = at(qdir, MODEL)
    full = random_stored({"a.txt": (30, 12), "b.txt": (25, 10), "c.txt": (20, 8)}, seed=3)
    words = np.random.default_rng(5).choice(["ice", "crane", "grain", "port", "winter", "odesa"], (75, 4))
    docs = [" ".join(w[: i % 5]) for i, w in enumerate(words)]  # some windows have no word
    sources = {}
    for key, entry, start in (("a.txt", full.files["a.txt"], 0), ("b.txt", full.files["b.txt"], 30),
                              ("c.txt", full.files["c.txt"], 55)):  # fmt: skip
        sources[key] = store.Source(entry.sha256, lambda: [], entry.rows, entry.passages,
                                    lexical=lambda a=start, n=entry.rows: docs[a : a + n])  # fmt: skip

    def first_rows(stored: store.Stored) -> np.ndarray:
        """A window's first sentence: its own row for the windows of one sentence (the first ones)."""
        out, p0 = [], 0
        for entry in stored.files.values():
            out += [p0 + min(r, entry.passages - 1) for r in range(entry.rows)]
            p0 += entry.passages
        return np.array(out)

    def check(stored: store.Stored, lexical: list[str]) -> None:
        ours = s.signals(s.load())
        theirs = InMemory(first_rows(stored), stored.vectors, stored.tokens, stored.token_counts, lexical)
        n = len(stored.vectors)
        starts = np.cumsum([0, *[f.rows for f in stored.files.values()]])
        singles = np.concatenate(
            [a + np.arange(f.passages) for a, f in zip(starts, stored.files.values(), strict=False)]
        )
        for q in unit(4, 16, seed=9):
            for k in (1, 10, n):
                a, b = ours.nearest(q, k, None), theirs.nearest(q, k, None)
                assert [r for r, _ in a] == [r for r, _ in b]
                np.testing.assert_allclose([x for _, x in a], [x for _, x in b], atol=1e-5)
            mask = np.arange(n) % 3 == 0
            assert [r for r, _ in ours.nearest(q, 5, mask)] == [r for r, _ in theirs.nearest(q, 5, mask)]
            rows = np.arange(0, n, 4)
            np.testing.assert_allclose(ours.cosine(q, rows), theirs.cosine(q, rows), atol=1e-5)
        qt = unit(3, 16, seed=10)
        np.testing.assert_allclose(ours.token_best(qt, singles), theirs.token_best(qt, singles), atol=2e-3)
        for terms in (["ice"], ["crane", "port"], ["winter", "odesa", "grain"], ["absent"]):
            a, b = ours.bm25_top(terms, 8, None), theirs.bm25_top(terms, 8, None)
            assert {r for r, _ in a} <= {r for r, x in enumerate(theirs.bm25(terms, np.arange(n))) if x > 0}
            np.testing.assert_allclose(sorted(x for _, x in a), sorted(x for _, x in b), atol=1e-5)
            np.testing.assert_allclose(
                ours.bm25(terms, np.arange(n)), theirs.bm25(terms, np.arange(n)), atol=1e-5
            )

    s.save(full, sources)
    check(full, docs)
    kept = only(full, ["a.txt", "c.txt"])
    monkeypatch.setattr(EdgeStore, "_drop_unlisted", lambda self, keep: None)
    s.save(kept, sources)
    assert count(s, source="b.txt") == 25 and count(s) == 75 + 1  # b's points are still there
    signals = s.signals(s.load())
    for q in full.vectors[30:55:5]:  # b's own vectors: its points would be nearest
        found = [r for r, _ in signals.nearest(q, 50, None)]
        assert len(found) == 50 and max(found) < 50
    assert {
        r for r, _ in signals.bm25_top(["ice", "crane", "port", "winter", "odesa", "grain"], 75, None)
    } <= set(range(50))


def test_maxsim_of_a_longer_window_is_built_from_its_sentences(tmp_path, qdir):
    """A window of 2-3 sentences stores no token vectors; its MaxSim is the best of its sentences',
    the same number as in memory; so are the "asked" signal and the verdict's evidence."""
    e = engine(tmp_path, INTERVIEW, backend=embedded(qdir))
    f = engine(tmp_path, INTERVIEW)
    longer = np.flatnonzero(e.ranker.first != e.ranker.last)[:40]
    assert count(at(qdir)) == len(e.ranker.windows) + 1
    q = e.query("Who decides whether Georgia can join the alliance?")
    np.testing.assert_allclose(
        e.ranker.maxsim(q.tokens, longer), f.ranker.maxsim(q.tokens, longer), atol=2e-3
    )
    assert isinstance(f.ranker, Ranker) and not hasattr(e.ranker.signals, "vectors")
    # The "asked" signal reads the interviewer's windows' cosines from the engine too, as does
    # the evidence the verdict is read from: the same numbers as in memory.
    rows = np.arange(len(e.ranker.windows))
    (ours, replies), (theirs, same) = e.ranker.asked(q.vector, rows), f.ranker.asked(q.vector, rows)
    assert replies.any() and (replies == same).all()
    np.testing.assert_allclose(ours, theirs, atol=1e-5)
    (hits, evidence), (faiss_hits, faiss_evidence) = e.ranker.search(q), f.ranker.search(q)
    assert [h.rows() for h in hits[:3]] == [h.rows() for h in faiss_hits[:3]]
    np.testing.assert_allclose(evidence.features(), faiss_evidence.features(), atol=2e-3)


# --- the engine on Qdrant Edge: a folder synced file by file ----------------------------------------


def test_incremental_sync_as_faiss_does(tmp_path, data, qdir):
    """Added, changed, removed and unchanged as on FAISS; only what changed is embedded; what
    was deleted is gone from the shard; the answers are FAISS's."""
    first = engine(tmp_path, data, backend=embedded(qdir))
    assert first.report.embedded_windows == first.report.windows
    change(data)
    fake = FakeEmbedder()
    e = engine(tmp_path, data, embedder=fake, backend=embedded(qdir))
    assert report_of(e) == changed("interview.txt") and e.report.saved
    assert e.report.embedded_windows == sum(fake.calls) == new_rows()
    assert len(e.state.stored.vectors) == 0  # none kept in the process
    assert_holds_exactly(at(qdir), e)
    faiss = engine(tmp_path, data)
    assert faiss.report.windows == e.report.windows
    assert_answers_as_faiss(e, faiss)
    again = engine(tmp_path, data, embedder=(fake := FakeEmbedder()), backend=embedded(qdir))
    assert again.report.embedded_windows == sum(fake.calls) == 0 and len(again.report.unchanged) == 3
    assert_answers_as_faiss(again, faiss)


def test_a_save_cut_short_before_the_record_keeps_the_previous_one(tmp_path, small, qdir, monkeypatch):
    """The record is written after the points: a save that fails before it leaves the last
    complete index, and the next start embeds again only what that save had not finished."""
    before = engine(tmp_path, small, backend=embedded(qdir))
    before_files = dict(before.state.stored.files)
    change(small)
    podcast = small / "more" / "podcast.md"
    logs: list[str] = []

    def cut(self, stored, listed) -> None:
        raise BackendUnavailable(f"Qdrant Edge at {self.path}: cut short before the record")

    with monkeypatch.context() as m:
        m.setattr(EdgeStore, "_write_record", cut)
        cut_short = engine(tmp_path, small, backend=embedded(qdir), logs=logs)
    assert not cut_short.report.saved and any("cut short" in line for line in logs)
    verbatim(cut_short.ask(QUESTIONS[1]))  # served from memory meanwhile, the unchanged file read back
    s = at(qdir)
    assert count(s, source="more/podcast.md", file=edge.file_id("more/podcast.md", sha(podcast))) > 0
    assert s.load().files == before_files  # but nothing vouches for its points
    fake = FakeEmbedder()
    e = engine(tmp_path, small, embedder=fake, backend=embedded(qdir))
    assert report_of(e) == changed() and e.report.embedded_windows == sum(fake.calls) == new_rows()
    assert_holds_exactly(s, e)
    assert_answers_as_faiss(e, engine(tmp_path, small))


def test_a_view_that_was_not_saved_is_searched_in_memory(tmp_path, small, qdir, monkeypatch):
    """Served from memory after a failed save, a view stays searchable whole when a refresh
    finds nothing to embed (a file touched, its text the same)."""
    e = engine(tmp_path, small, backend=embedded(qdir))
    (small / "extra.srt").write_text(SRT, encoding="utf-8")

    def down(self, *args) -> None:
        raise BackendUnavailable(f"Qdrant Edge at {self.path}: down")

    with monkeypatch.context() as m:
        m.setattr(EdgeStore, "_upload", down)
        assert e.refresh() == ["extra.srt"] and not e.report.saved
    assert isinstance(e.ranker.signals, InMemory)
    notes = small / "notes.txt"
    mtime = notes.stat().st_mtime_ns + 1_000_000_000
    os.utime(notes, ns=(mtime, mtime))
    assert e.refresh() == ["notes.txt"] and e.report.embedded_windows == 0 and e.report.saved
    assert list(e.state.stored.files)[0] == "extra.srt"  # its rows come first
    assert_answers_as_faiss(e, engine(tmp_path, small))


@pytest.mark.parametrize(
    "damage, why",
    [
        ("format", f"has format {store.FORMAT_VERSION - 1}, not {store.FORMAT_VERSION}"),
        ("model", "was built with model other"),
        ("size", "its vector 'dense' is not 32 dimensions"),
        ("unnamed", "its vector 'tokens' is not 32 dimensions"),
    ],
)
def test_a_shard_of_another_format_is_rebuilt_not_used(tmp_path, small, qdir, damage, why):
    """A record of another format or model, or vectors of another size or kind: not loaded,
    and the next sync makes the shard anew from every file."""
    from qdrant_edge import Distance, EdgeConfig, EdgeShard, EdgeVectorParams, Point, UpdateOperation

    engine(tmp_path, small, backend=embedded(qdir))
    s = at(qdir)
    s._open()
    record = s.shard.retrieve([RECORD_ID], with_payload=True, with_vector=False)[0].payload
    if damage == "format":
        record["format_version"] = store.FORMAT_VERSION - 1
    elif damage == "model":
        record["model"] = {"name": "other", "weights_sha256": "00" * 32}
    else:
        s._drop()
        size = 16 if damage == "size" else 32
        vectors = {"dense": EdgeVectorParams(size=size, distance=Distance.Cosine)}
        s.folder.shards[s.name] = EdgeShard.create(str(s.path), EdgeConfig(vectors=vectors))
    s.shard.update(UpdateOperation.upsert_points([Point(RECORD_ID, {}, record)]))
    with pytest.raises(store.IndexUnusable, match=re.escape(why)):
        s.load()
    logs: list[str] = []
    fake = FakeEmbedder()
    e = engine(tmp_path, small, embedder=fake, logs=logs, backend=embedded(qdir))
    assert any("rebuilding the index" in line and why in line for line in logs), logs
    assert e.report.added == ["more/field.vtt", "more/podcast.md", "notes.txt"]
    assert e.report.embedded_windows == e.report.windows == sum(fake.calls)
    assert count(s) == e.report.windows + 1
    assert_answers_as_faiss(e, engine(tmp_path, small))


# --- killed, held, lost -------------------------------------------------------------------------------

# `python -m qa ...` with the fake embedder (as in test_faults.py), stopped for good at one write of
# a sync: just after the first file's points ("points", the next file's not yet sent), just before
# the record ("record"), or just after it ("recorded", the points of the files it no longer lists not
# yet deleted). It touches MARKER when it stops there.
PAUSED = """
import runpy, sys, time
sys.path.insert(0, {tests!r})
from conftest import FakeEmbedder
import qa.engine
qa.engine.Embedder = lambda model=None: FakeEmbedder()
from embeddings.edge import EdgeStore
marker, stage = sys.argv[1:3]
def stop():
    open(marker, "w").close()
    time.sleep(300)
real_upload, real_record = EdgeStore._upload, EdgeStore._write_record
def upload(self, *args):
    real_upload(self, *args)
    if stage == "points":
        stop()
def record(self, *args):
    if stage == "record":
        stop()
    real_record(self, *args)
    if stage == "recorded":
        stop()
EdgeStore._upload, EdgeStore._write_record = upload, record
sys.argv = ["qa", *sys.argv[3:]]
runpy.run_module("qa", run_name="__main__", alter_sys=True)
"""


def killed_at(tmp_path: Path, data: Path, qdir: Path, stage: str) -> None:
    """`python -m qa index --json --backend qdrant --qdrant-path QDIR`, SIGKILLed where it stopped."""
    marker = tmp_path / "paused"
    args = ["index", "--json", "--data", str(data), "--backend", "qdrant", "--qdrant-path", str(qdir)]
    proc = subprocess.Popen(
        [sys.executable, "-c", PAUSED.format(tests=str(ROOT / "tests")), str(marker), stage, *args],
        cwd=ROOT, env=env_for_subprocess(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    kill_when_paused(proc, marker, stage)


@pytest.mark.integration
@pytest.mark.parametrize("stage", ["points", "record", "recorded"])
def test_sigkill_while_syncing_never_serves_a_partial_index(tmp_path, small, qdir, stage):
    """Killed before its record, a sync is done again from the last record: the files it did not
    finish are embedded anew. Killed after, its record is whole: nothing is embedded again, and
    the points it had yet to delete are never quoted. Either way the folder opens again."""
    engine(tmp_path, small, backend=embedded(qdir))
    release(qdir)
    change(small)
    killed_at(tmp_path, small, qdir, stage)
    s = at(qdir)  # the lock died with the process
    assert count(s, source="extra.srt") == rows(SRT, "s.srt")  # the first file's points went in (WAL)
    assert count(s, source="more/field.vtt") > 0
    recorded = sorted(s.load().files)
    assert recorded == (["extra.srt", "more/podcast.md", "notes.txt"] if stage == "recorded"
                        else ["more/field.vtt", "more/podcast.md", "notes.txt"])  # fmt: skip
    fake = FakeEmbedder()
    e = engine(tmp_path, small, embedder=fake, backend=embedded(qdir))
    if stage == "recorded":
        assert e.report.unchanged == recorded and e.report.embedded_windows == sum(fake.calls) == 0
        assert count(s, source="more/field.vtt") == 0  # load() dropped the points no record lists
    else:
        assert report_of(e) == changed() and e.report.embedded_windows == sum(fake.calls) == new_rows()
        assert_holds_exactly(s, e)
    assert e.report.saved
    assert_answers_as_faiss(e, engine(tmp_path, small))


def test_connect_names_what_it_cannot_use(tmp_path):
    blocker = tmp_path / "afile"
    blocker.write_text("not a folder", encoding="utf-8")
    with pytest.raises(
        BackendUnavailable, match=re.escape(f"the Qdrant folder {blocker.resolve()}/qdrant")
    ) as e:
        edge.connect(blocker / "qdrant")
    assert isinstance(e.value, OSError) and "\n" not in str(e.value)


@pytest.mark.integration
@pytest.mark.parametrize("program", [["-m", "qa", "index", "--json"], ["app.py", "--port", "0"]])
@pytest.mark.parametrize("case", ["path without qdrant", "folder held"])
def test_backend_start_failures_exit_2_with_one_line(tmp_path, qdir, program, case):
    """Before any model is loaded: exit 2 and one line that names the folder; a second process on
    a held folder is told at once, not left waiting."""
    flags, message = {
        "path without qdrant": (["--backend", "faiss", "--qdrant-path", str(qdir)], "need --backend qdrant"),
        "folder held": (["--backend", "qdrant", "--qdrant-path", str(qdir)], "already accessed"),
    }[case]
    if case == "folder held":
        edge.connect(qdir)  # this process holds the folder
    r = run(tmp_path, *program, "--data", str(INTERVIEW), *flags)
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], r.stderr
    if case == "folder held":
        assert str(qdir.resolve()) in lines[0]
    assert not r.stdout


def test_a_lost_shard_while_serving_then_back_without_a_restart(tmp_path, qdir):
    """The shard closed under the app (a lost engine): 503 from /api/ask and /healthz, naming it;
    back: 200 with the same answer."""
    from fastapi.testclient import TestClient
    from qdrant_edge import EdgeShard

    import app

    interview = shutil.copy(INTERVIEW, tmp_path)  # in the working directory: quotes name it so
    e = Engine(interview, tmp_path / "index", embedder=FakeEmbedder(), progress=False, log=lambda m: None,
               backend=embedded(qdir))  # fmt: skip
    question = "Is NATO a party to this war?"
    served = verbatim(e.ask(question)).to_dict()
    s = e.backend
    web_app = app.build_app(e, feedback=tmp_path / "feedback.jsonl", allowed_hosts=["testserver"])
    with TestClient(web_app) as web:
        assert web.get("/api/ask", params={"q": question}).json() == served
        s.shard.close()
        with pytest.raises(QuestionError) as refused:
            e.ask(question)
        assert refused.value.status == 503 and str(s.path) in str(refused.value)
        r = web.get("/api/ask", params={"q": question})
        assert r.status_code == 503 and str(s.path) in r.json()["error"]
        r = web.get("/healthz")
        assert r.status_code == 503 and r.json()["status"] == "unavailable"
        s.folder.shards[s.name] = EdgeShard.load(str(s.path))
        assert web.get("/healthz").json()["status"] == "ok"
        r = web.get("/api/ask", params={"q": question})
        assert r.status_code == 200 and r.json() == served


def test_past_exact_upto_the_dense_search_walks_a_graph_and_answers_as_faiss(
    tmp_path, data, qdir, monkeypatch
):
    """A folder past EXACT_UPTO windows: its save builds an HNSW graph of the dense vectors,
    segment by segment of SEGMENT points, the nearest windows are searched through it, not by a
    scan of every window, and on these transcripts the answers are still FAISS's. Up to
    EXACT_UPTO the search is exact."""
    import qdrant_edge

    searched = []
    real = qdrant_edge.SearchParams

    def spy(**kwargs):
        searched.append("graph" if kwargs.get("hnsw_ef") else "exact" if kwargs.get("exact") else "planned")
        return real(**kwargs)

    monkeypatch.setattr(qdrant_edge, "SearchParams", spy)
    monkeypatch.setattr(edge, "EXACT_UPTO", 50)
    monkeypatch.setattr(edge, "SEGMENT", 60)  # sealed every 60 points, and never merged back
    e = engine(tmp_path, data, backend=embedded(qdir))
    assert e.report.windows > 2 * 60
    info = at(qdir).shard.info()
    assert info.indexed_vectors_count >= e.report.windows
    # a sealed segment per 60 windows, and the appendable one that takes the rest; merged back
    # (as the optimizer does when max_segment_size lets it), they would be two
    assert info.segments_count >= e.report.windows // 60 + 1
    # what a sealed segment reads in when the shard opens: its dense vectors and their graph, not
    # its token vectors (embeddings/edge.py, `_config`)
    segments = at(qdir).path.glob("segments/*/segment.json")
    kept = [json.loads(f.read_text())["config"]["vector_data"] for f in segments]
    sealed = [v for v in kept if v["dense"]["index"]["type"] == "hnsw"]
    assert len(sealed) >= e.report.windows // 60
    for v in sealed:
        dense = v["dense"]["storage_type"], v["dense"]["index"]["options"]["memory"]
        assert dense == ("InRamMmap", "cached") and v["tokens"]["storage_type"] == "Mmap"
    faiss = engine(tmp_path, data)
    searched.clear()
    assert_answers_as_faiss(e, faiss)
    assert "graph" in searched
    monkeypatch.setattr(edge, "EXACT_UPTO", 10**6)
    searched.clear()
    e.ask(QUESTIONS[0])
    assert "exact" in searched and "graph" not in searched
