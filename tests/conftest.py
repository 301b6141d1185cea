"""Shared fixtures: no network, no writes outside tmp_path, a fake embedder for unit tests.

What costs time is shared, so that the suite runs in minutes:
- `embedder` (session): the real default model, loaded once per run; pass it to `Engine(...,
  embedder=embedder)` where the model is what a test is about.
- `interview_engine` (session): an Engine over data/interview.txt with the real model, built once;
  for tests that only ask it questions (never refresh, filter state or write through it).
- `interview_index` (session): a folder holding the real model's index of data/interview.txt;
  `serve(..., index=interview_index)` and `seed_index` copy it, so a process starts without
  embedding the interview again.
- `app` (session): app.py on the packaged interview, for tests that only read from it (routes,
  pages, load). A test that changes what an app serves starts its own with `serve()` in a
  module-scoped fixture.
- `serve(tmp, *flags, standin=True)` and `tests/standin.py`: a real app.py or `python -m qa`
  process with the stand-in embedder (FakeEmbedder at the model's 384 dimensions), for tests of
  everything but the model: scale, folder bookkeeping, faults.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"
INTERVIEW = ROOT / "data" / "interview.txt"
STANDIN = "stand-in-384"  # the stand-in embedder's name: tests/standin.py
sys.path.insert(0, str(ROOT))

from qa.retrieve import tokenize  # noqa: E402


class FakeEmbedder:
    """Same interface as embeddings.model.Embedder: a sum of hash-seeded unit vectors per word,
    so texts that share words are close, as with a real model, and every run is identical."""

    def __init__(self, name: str = "fake-embedder", dim: int = 32) -> None:
        self.name, self.dim = name, dim
        self.calls: list[int] = []
        self._words: dict[str, np.ndarray] = {}  # each word's vector, made once

    @property
    def identity(self) -> dict[str, str]:
        return {"name": self.name, "weights_sha256": hashlib.sha256(self.name.encode()).hexdigest()}

    def _word(self, word: str) -> np.ndarray:
        if word not in self._words:
            seed = int.from_bytes(hashlib.sha256(word.encode()).digest()[:4], "little")
            self._words[word] = np.random.default_rng(seed).standard_normal(self.dim).astype(np.float32)
        return self._words[word]

    def encode(self, texts, batch_size: int = 64, progress: bool = False) -> np.ndarray:
        self.calls.append(len(texts))
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for i, text in enumerate(texts):
            for w in tokenize(text) or ["<empty>"]:
                out[i] += self._word(w)
            out[i] /= np.linalg.norm(out[i]) or 1.0
        return out

    def encode_tokens(self, texts, batch_size: int = 64, progress: bool = False):
        """Text vectors as `encode`, and one unit vector per word as its token vectors."""
        vectors = self.encode(texts)
        pieces = [text.lower().split() or ["<empty>"] for text in texts]
        tokens = [np.array([self._word(w) / np.linalg.norm(self._word(w)) for w in words], np.float16)
                  for words in pieces]  # fmt: skip
        return vectors, tokens, pieces


@pytest.fixture
def fake_embedder() -> FakeEmbedder:
    return FakeEmbedder()


@pytest.fixture(scope="session")
def embedder():
    """The real default model, loaded once for the whole run."""
    from embeddings.model import Embedder, offline

    offline()
    return Embedder()


@pytest.fixture(scope="session")
def interview_index(tmp_path_factory, embedder) -> Path:
    """An index folder holding the real model's index of data/interview.txt, built once."""
    from qa.engine import Engine

    folder = tmp_path_factory.mktemp("interview-index")
    Engine(INTERVIEW, folder, embedder=embedder, progress=False, log=lambda m: None)
    return folder


@pytest.fixture(scope="session")
def interview_engine(interview_index, embedder):
    """The real model's Engine over data/interview.txt (loaded from `interview_index`): ask only."""
    from qa.engine import Engine

    return Engine(INTERVIEW, interview_index, embedder=embedder, progress=False, log=lambda m: None)


def seed_index(index: Path, target: Path) -> Path:
    """Copy a built index folder (`interview_index`) to `target`, where a process will find it."""
    shutil.copytree(index, target, dirs_exist_ok=True)
    return target


@pytest.fixture(scope="session")
def app(tmp_path_factory, interview_index) -> Iterator[str]:
    """app.py on the packaged interview with the real model, started once per run: its base URL.
    Only for tests that read from it; whatever changes what an app serves gets its own."""
    yield from serve(tmp_path_factory.mktemp("app"), index=interview_index)


@pytest.fixture(autouse=True)
def _sandbox(tmp_path, monkeypatch):
    """Tests never reach beyond loopback and keep their files in tmp_path."""
    monkeypatch.setenv("QA_INDEX_DIR", str(tmp_path / "index"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("GRADIO_ANALYTICS_ENABLED", "False")
    real_connect = socket.socket.connect

    def guarded(self, address):
        host = address[0] if isinstance(address, tuple) else address
        if (
            isinstance(host, str)
            and host not in ("127.0.0.1", "localhost", "::1")
            and not host.startswith("/")
        ):
            raise RuntimeError(f"test tried to reach the network: {address}")
        return real_connect(self, address)

    monkeypatch.setattr(socket.socket, "connect", guarded)
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def write(tmp_path):
    """Write a text file under tmp_path and return its path."""

    def _write(name: str, text: str | bytes) -> Path:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(text, bytes):
            path.write_bytes(text)
        else:
            path.write_text(text, encoding="utf-8", newline="")
        return path

    return _write


def read_exact(path: Path | str) -> str:
    with open(path, encoding="utf-8", newline="") as f:
        return f.read()


def env_for_subprocess(tmp_path: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        HF_HUB_OFFLINE="1",
        GRADIO_ANALYTICS_ENABLED="False",
        QA_INDEX_DIR=str(tmp_path / "index"),
        PYTHONPATH=str(ROOT),
    )
    return env


def kill_when_paused(proc: subprocess.Popen, marker: Path, stage: str) -> None:
    """SIGKILL a child once it touches `marker`, where it stopped at `stage` (or wherever it is
    if it never gets there: then the test fails)."""
    try:
        deadline = time.monotonic() + 60
        while not marker.exists():
            assert proc.poll() is None, f"the child finished without reaching {stage}: {proc.communicate()}"
            assert time.monotonic() < deadline, f"the child did not reach {stage} in 60 s"
            time.sleep(0.02)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve(
    tmp: Path,
    *args: str,
    startup_s: float = 180,
    env: dict[str, str] | None = None,
    standin: bool = False,
    index: Path | None = None,
) -> Iterator[str]:
    """Run app.py on a free loopback port until the generator is closed; yields its base URL.
    `env` adds to its environment.

    `standin`: with the stand-in embedder (tests/standin.py) instead of the model. `index`: an
    index folder (`interview_index`) copied to tmp/index, its QA_INDEX_DIR, before the start.
    Its output goes to tmp/app.log (a file: a full pipe would stall the app), shown on failure."""
    port = free_port()
    log = tmp / "app.log"
    if index is not None:
        seed_index(index, tmp / "index")
    with open(log, "w", encoding="utf-8") as out:
        launcher = [str(ROOT / "tests" / "standin.py")] if standin else []
        cmd = [sys.executable, *launcher, "app.py", "--port", str(port), *args]
        env = {**env_for_subprocess(tmp), **(env or {})}
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + startup_s
        while True:
            if proc.poll() is not None:
                pytest.fail(f"app.py exited with {proc.returncode}:\n{log.read_text(encoding='utf-8')}")
            try:
                with urllib.request.urlopen(base + "/healthz", timeout=5) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"app.py not healthy after {startup_s}s:\n{log.read_text(encoding='utf-8')}")
            time.sleep(0.3)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
