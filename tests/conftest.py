"""Shared fixtures: no network, no writes outside tmp_path, a fake embedder for unit tests."""

from __future__ import annotations

import hashlib
import os
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
sys.path.insert(0, str(ROOT))

from qa.retrieve import tokenize  # noqa: E402


class FakeEmbedder:
    """Same interface as embeddings.model.Embedder: a sum of hash-seeded unit vectors per word,
    so texts that share words are close, as with a real model, and every run is identical."""

    name = "fake-embedder"
    dim = 32

    def __init__(self, name: str = "fake-embedder") -> None:
        self.name = name
        self.calls: list[int] = []

    @property
    def identity(self) -> dict[str, str]:
        return {"name": self.name, "weights_sha256": hashlib.sha256(self.name.encode()).hexdigest()}

    def _word(self, word: str) -> np.ndarray:
        seed = int.from_bytes(hashlib.sha256(word.encode()).digest()[:4], "little")
        return np.random.default_rng(seed).standard_normal(self.dim).astype(np.float32)

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


def serve(tmp: Path, *args: str, startup_s: float = 180, env: dict[str, str] | None = None) -> Iterator[str]:
    """Run app.py on a free loopback port until the generator is closed; yields its base URL.
    `env` adds to its environment.

    Its output goes to tmp/app.log (a file: a full pipe would stall the app), shown on failure."""
    port = free_port()
    log = tmp / "app.log"
    with open(log, "w", encoding="utf-8") as out:
        cmd = [sys.executable, "app.py", "--port", str(port), *args]
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
