import json

import numpy as np
import pytest
from conftest import INTERVIEW, FakeEmbedder

from embeddings import index as store
from qa.engine import Engine
from qa.retrieve import windows
from qa.transcript import parse_file

MODEL = {"name": "m", "weights_sha256": "ab" * 32}


def unit(rows: int, dim: int = 4, seed: int = 0) -> np.ndarray:
    v = np.random.default_rng(seed).standard_normal((rows, dim)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


# Interview-sized numbers: the title is a passage of its own, and windows of 2-3 sentences add rows.
PASSAGES, WINDOWS = 77, 166


def stored(rows: int = 5) -> store.Stored:
    """a.txt: 3 windows over 2 passages of 2 and 1 tokens; b.txt: the other rows, 2 passages."""
    counts = np.array([2, 1, 3, 1], dtype=np.int32)
    files = {"a.txt": store.FileEntry("11" * 32, 3, 2), "b.txt": store.FileEntry("22" * 32, rows - 3, 2)}
    tokens = unit(int(counts.sum()), seed=1).astype(np.float16)
    return store.Stored(MODEL, 4, files, unit(rows), tokens, counts)


def test_round_trip(tmp_path):
    s = stored()
    store.save(tmp_path, s)
    back = store.load(tmp_path, MODEL)
    assert np.allclose(back.vectors, s.vectors)
    assert back.tokens.dtype == np.float16 and np.array_equal(back.tokens, s.tokens)
    assert back.token_counts.tolist() == [2, 1, 3, 1]
    assert back.files == s.files
    parts = back.parts()
    assert list(parts) == ["a.txt", "b.txt"]
    (va, ta, ca), (vb, tb, cb) = parts["a.txt"], parts["b.txt"]
    assert np.allclose(va, s.vectors[:3]) and np.allclose(vb, s.vectors[3:])
    assert np.array_equal(ta, s.tokens[:3]) and np.array_equal(tb, s.tokens[3:])
    assert ca.tolist() == [2, 1] and cb.tolist() == [3, 1]
    manifest = json.loads((tmp_path / store.MANIFEST).read_text())
    assert manifest["format_version"] == store.FORMAT_VERSION == 2
    assert manifest["count"] == 5 and manifest["dim"] == 4 and manifest["model"] == MODEL
    assert manifest["files"]["b.txt"] == {"sha256": "22" * 32, "rows": 2, "passages": 2}
    assert manifest["tokens_sha256"] == store.sha256_bytes((tmp_path / store.TOKENS_FILE).read_bytes())
    assert manifest["token_counts_sha256"] == store.sha256_bytes((tmp_path / store.COUNTS_FILE).read_bytes())
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_an_index_of_format_1_is_not_used(tmp_path):
    store.save(tmp_path, stored())
    manifest = json.loads((tmp_path / store.MANIFEST).read_text())
    (tmp_path / store.MANIFEST).write_text(json.dumps({**manifest, "format_version": 1}))
    with pytest.raises(store.IndexUnusable, match="index format 1, expected 2"):
        store.load(tmp_path, MODEL)


def test_other_model_is_refused(tmp_path):
    store.save(tmp_path, stored())
    with pytest.raises(store.IndexUnusable, match="built with model m"):
        store.load(tmp_path, {"name": "other", "weights_sha256": "cd" * 32})


DATA_FILES = [store.INDEX_FILE, store.TOKENS_FILE, store.COUNTS_FILE]


@pytest.mark.parametrize(
    "name, damage",
    [(n, d) for n in DATA_FILES for d in ("flip", "truncate", "delete", "empty")]
    + [(store.INDEX_FILE, "manifest-garbage"), (store.INDEX_FILE, "manifest-missing")],
)
def test_damaged_files_are_detected(tmp_path, name, damage):
    store.save(tmp_path, stored())
    data = tmp_path / name
    raw = bytearray(data.read_bytes())
    if damage == "flip":
        raw[len(raw) // 2] ^= 0xFF
        data.write_bytes(bytes(raw))
    elif damage == "truncate":
        data.write_bytes(bytes(raw[: len(raw) // 2]))
    elif damage == "delete":
        data.unlink()
    elif damage == "manifest-garbage":
        (tmp_path / store.MANIFEST).write_text("{not json")
    elif damage == "manifest-missing":
        (tmp_path / store.MANIFEST).unlink()
    elif damage == "empty":
        data.write_bytes(b"")
    with pytest.raises(store.IndexUnusable):
        store.load(tmp_path, MODEL)


def test_token_counts_that_do_not_match_the_manifest_are_refused(tmp_path):
    s = stored()
    s.files["b.txt"].passages = 3  # the manifest claims a passage that has no token count
    store.save(tmp_path, s)
    with pytest.raises(store.IndexUnusable, match="does not match the manifest"):
        store.load(tmp_path, MODEL)


def test_empty_index_round_trip(tmp_path):
    s = store.Stored(MODEL, 4, {}, np.zeros((0, 4), np.float32), np.zeros((0, 4), np.float16))
    store.save(tmp_path, s)
    back = store.load(tmp_path, MODEL)
    assert back.vectors.shape == (0, 4) and back.tokens.shape == (0, 4) and back.token_counts.shape == (0,)
    assert back.parts() == {}


# --- the engine over the store ---------------------------------------------------------------


def engine(tmp_path, data=INTERVIEW, embedder=None, logs=None):
    return Engine(
        data,
        tmp_path / "index",
        embedder=embedder or FakeEmbedder(),
        progress=False,
        log=(logs.append if logs is not None else lambda m: None),
    )


def test_the_interview_has_its_windows_counted():
    ps = parse_file(INTERVIEW).passages
    assert (len(ps), len(windows(ps))) == (PASSAGES, WINDOWS)


def test_second_start_embeds_nothing(tmp_path):
    first = engine(tmp_path)
    assert first.report.added == ["interview.txt"] and first.report.embedded_windows == WINDOWS
    assert first.report.windows == len(first.vectors) == WINDOWS
    assert len(first.token_counts) == PASSAGES and len(first.tokens) == first.token_counts.sum()
    fake = FakeEmbedder()
    second = engine(tmp_path, embedder=fake)
    assert second.report.unchanged == ["interview.txt"] and second.report.embedded_windows == 0
    assert fake.calls == [0] or fake.calls == []
    assert np.allclose(first.vectors, second.vectors)
    assert np.array_equal(first.tokens, second.tokens)
    assert np.array_equal(first.token_counts, second.token_counts)


def test_changed_transcript_rebuilds(tmp_path, write):
    path = write("data/t.txt", INTERVIEW.read_text(encoding="utf-8"))
    engine(tmp_path, data=path)
    path.write_text(
        INTERVIEW.read_text(encoding="utf-8").replace("NATO is not a party", "NATO is no party"),
        encoding="utf-8",
    )
    again = engine(tmp_path, data=path)
    assert again.report.changed == ["t.txt"] and again.report.embedded_windows == WINDOWS


def test_other_model_gets_its_own_folder(tmp_path):
    engine(tmp_path)
    other = engine(tmp_path, embedder=FakeEmbedder("another"))
    assert other.report.added == ["interview.txt"]
    assert len(list((tmp_path / "index").iterdir())) == 2
    assert engine(tmp_path).report.embedded_windows == 0  # switching back is instant


def test_corrupted_index_is_rebuilt_with_a_warning(tmp_path):
    first = np.array(engine(tmp_path).vectors)  # a copy: the engine maps the file damaged in place below
    folder = next((tmp_path / "index").iterdir())
    raw = bytearray((folder / store.INDEX_FILE).read_bytes())
    raw[-10] ^= 0x01
    (folder / store.INDEX_FILE).write_bytes(bytes(raw))
    logs = []
    again = engine(tmp_path, logs=logs)
    assert again.report.embedded_windows == WINDOWS
    assert any("rebuilding the index" in m and "checksum" in m for m in logs)
    assert np.allclose(first, again.vectors)
    assert store.load(folder, FakeEmbedder().identity).vectors.shape[0] == WINDOWS


def test_damaged_token_vectors_are_rebuilt_with_a_warning(tmp_path):
    first = np.array(engine(tmp_path).tokens)  # a copy: the engine maps the file overwritten in place below
    folder = next((tmp_path / "index").iterdir())
    (folder / store.TOKENS_FILE).write_bytes(b"not numpy")
    logs = []
    again = engine(tmp_path, logs=logs)
    assert again.report.embedded_windows == WINDOWS
    assert any("rebuilding the index" in m and store.TOKENS_FILE in m for m in logs)
    assert np.array_equal(first, again.tokens)


def test_unwritable_index_dir_serves_from_memory(tmp_path):
    """The index folder would sit below a regular file: no one can create it, root included."""
    blocker = tmp_path / "afile"
    blocker.write_text("not a folder", encoding="utf-8")
    logs = []
    e = Engine(INTERVIEW, blocker / "index", embedder=FakeEmbedder(), progress=False, log=logs.append)
    assert not e.report.saved and e.report.added == ["interview.txt"]
    assert e.report.windows == WINDOWS and len(e.vectors) == WINDOWS
    assert sum("cannot write the index" in m and "serving from memory" in m for m in logs) == 1
    assert not any("rebuilding" in m for m in logs)  # nothing stored: nothing to warn about
    answer = e.ask("Is NATO a party to this war?")
    assert answer.answered and answer.quotes[0].text == "NATO is not a party to this war."
    assert blocker.read_text(encoding="utf-8") == "not a folder"
