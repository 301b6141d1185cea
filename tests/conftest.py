"""Shared fixtures: no network, no writes outside tmp_path, a fake embedder for unit tests."""

from __future__ import annotations

import hashlib
import os
import socket
import sys
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
