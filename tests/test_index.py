import json

import numpy as np
import pytest
from conftest import INTERVIEW, FakeEmbedder

from embeddings import index as store
from qa.engine import Engine

MODEL = {"name": "m", "weights_sha256": "ab" * 32}


def unit(rows: int, dim: int = 4, seed: int = 0) -> np.ndarray:
    v = np.random.default_rng(seed).standard_normal((rows, dim)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def stored(rows: int = 5) -> store.Stored:
    return store.Stored(
        MODEL,
        4,
        {"a.txt": store.FileEntry("11" * 32, 3), "b.txt": store.FileEntry("22" * 32, rows - 3)},
        unit(rows),
    )


def test_round_trip(tmp_path):
    s = stored()
    store.save(tmp_path, s)
    back = store.load(tmp_path, MODEL)
    assert np.allclose(back.vectors, s.vectors)
    assert back.rows_of() == {"a.txt": (0, 3), "b.txt": (3, 5)}
    manifest = json.loads((tmp_path / store.MANIFEST).read_text())
    assert manifest["format_version"] == store.FORMAT_VERSION
    assert manifest["count"] == 5 and manifest["dim"] == 4 and manifest["model"] == MODEL
    assert set(manifest["files"]) == {"a.txt", "b.txt"}
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_other_model_is_refused(tmp_path):
    store.save(tmp_path, stored())
    with pytest.raises(store.IndexUnusable, match="built with model m"):
        store.load(tmp_path, {"name": "other", "weights_sha256": "cd" * 32})


@pytest.mark.parametrize(
    "damage", ["flip", "truncate", "delete", "manifest-garbage", "manifest-missing", "empty"]
)
def test_damaged_files_are_detected(tmp_path, damage):
    store.save(tmp_path, stored())
    data = tmp_path / store.INDEX_FILE
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


def test_empty_index_round_trip(tmp_path):
    s = store.Stored(MODEL, 4, {}, np.zeros((0, 4), np.float32))
    store.save(tmp_path, s)
    assert store.load(tmp_path, MODEL).vectors.shape == (0, 4)


# --- the engine over the store ---------------------------------------------------------------


def engine(tmp_path, data=INTERVIEW, embedder=None, logs=None):
    return Engine(
        data,
        tmp_path / "index",
        embedder=embedder or FakeEmbedder(),
        progress=False,
        log=(logs.append if logs is not None else lambda m: None),
    )


def test_second_start_embeds_nothing(tmp_path):
    first = engine(tmp_path)
    assert first.report.added == ["interview.txt"] and first.report.embedded_passages == 76
    fake = FakeEmbedder()
    second = engine(tmp_path, embedder=fake)
    assert second.report.unchanged == ["interview.txt"] and second.report.embedded_passages == 0
    assert fake.calls == [0] or fake.calls == []
    assert np.allclose(first.vectors, second.vectors)


def test_changed_transcript_rebuilds(tmp_path, write):
    path = write("data/t.txt", INTERVIEW.read_text(encoding="utf-8"))
    engine(tmp_path, data=path)
    path.write_text(
        INTERVIEW.read_text(encoding="utf-8").replace("NATO is not a party", "NATO is no party"),
        encoding="utf-8",
    )
    again = engine(tmp_path, data=path)
    assert again.report.changed == ["t.txt"] and again.report.embedded_passages == 76


def test_other_model_gets_its_own_folder(tmp_path):
    engine(tmp_path)
    other = engine(tmp_path, embedder=FakeEmbedder("another"))
    assert other.report.added == ["interview.txt"]
    assert len(list((tmp_path / "index").iterdir())) == 2
    assert engine(tmp_path).report.embedded_passages == 0  # switching back is instant


def test_corrupted_index_is_rebuilt_with_a_warning(tmp_path):
    first = engine(tmp_path)
    folder = next((tmp_path / "index").iterdir())
    raw = bytearray((folder / store.INDEX_FILE).read_bytes())
    raw[-10] ^= 0x01
    (folder / store.INDEX_FILE).write_bytes(bytes(raw))
    logs = []
    again = engine(tmp_path, logs=logs)
    assert again.report.embedded_passages == 76
    assert any("rebuilding the index" in m and "checksum" in m for m in logs)
    assert np.allclose(first.vectors, again.vectors)
    assert store.load(folder, FakeEmbedder().identity).vectors.shape[0] == 76


def test_read_only_index_dir_serves_from_memory(tmp_path):
    index_dir = tmp_path / "index"
    index_dir.mkdir()
    index_dir.chmod(0o500)
    try:
        logs = []
        e = Engine(INTERVIEW, index_dir, embedder=FakeEmbedder(), progress=False, log=logs.append)
        if not e.report.saved:  # root may write anyway
            assert any("serving from memory" in m for m in logs)
        assert e.ask("Is NATO a party to this war?").quotes
    finally:
        index_dir.chmod(0o700)
