"""Transcripts added from the page: checked by the data folder's rules, then stored under a name
of our own making.

The browser's file name is text to show and to slug, never a path: what is written is
`<slug of its stem>-<8 hex of the sha256 of the content><suffix>` inside the uploads folder, so
no name can reach outside it, and the same content is stored once. The engine reads the folder
beside the data folder (`Engine(uploads=...)`), its files keyed `uploads/NAME`.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

from embeddings.index import write_atomic
from qa.engine import file_label
from qa.transcript import SUFFIXES, TranscriptError, decode, parse

MAX_BYTES = 5_000_000
MAX_STEM = 60  # characters of the slug kept from the browser's name
MAX_SHOWN = 80  # characters of the browser's name quoted in a message


class UploadError(ValueError):
    """An upload refused; the message names the file as the user called it and says what to do."""


def default_folder(index_dir: Path) -> Path:
    """Where uploads live unless told otherwise: beside the index and the feedback file, the
    app's own folder, never the user's data folder."""
    return Path(index_dir) / "uploads"


def shown(name: str) -> str:
    """The browser's name as safe, printable text, short enough for one line of a message."""
    label = file_label(name)
    return label if len(label) <= MAX_SHOWN else label[: MAX_SHOWN - 1] + "…"


def safe_name(name: str, data: bytes) -> str:
    """The name the file is stored under: nothing of `name` but letters, digits, "_" and "-"
    survives, so it cannot be a path, a dotfile or a device name; the hash keeps names apart."""
    stem, _, suffix = name.rpartition(".")  # `check` has made sure there is a known suffix
    slug = re.sub(r"[^a-z0-9_-]+", "-", stem.lower())
    slug = re.sub(r"-{2,}", "-", slug).strip("-")[:MAX_STEM].strip("-") or "transcript"
    return f"{slug}-{hashlib.sha256(data).hexdigest()[:8]}.{suffix.lower()}"


def check(name: str, data: bytes) -> None:
    """Refuse what the data folder would skip, with the parser's own words."""
    label = shown(name)
    _, dot, suffix = name.rpartition(".")
    if not dot or f".{suffix.lower()}" not in SUFFIXES:
        kinds = f"{', '.join(SUFFIXES[:-1])} or {SUFFIXES[-1]}"
        raise UploadError(f"{label}: not a transcript file; upload a {kinds} file (plain text or subtitles)")
    if len(data) > MAX_BYTES:
        raise UploadError(
            f"{label}: {len(data):,} bytes, over the limit of {MAX_BYTES / 1e6:g} MB "
            f"({MAX_BYTES:,} bytes) per file; split it into parts and upload those"
        )
    try:
        parse(decode(data, label), label)
    except TranscriptError as e:
        raise UploadError(str(e)) from None


def save(folder: Path, name: str, data: bytes) -> Path:
    """Check an uploaded file and store it in `folder` (created if missing); returns its path.

    Nothing is written unless the file would be read as a transcript. Raises UploadError."""
    check(name, data)
    folder = Path(folder)
    target = folder / safe_name(name, data)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        same = next((p for p in folder.glob(f"*-{target.stem[-8:]}.*") if _holds(p, data)), None)
        if same is not None:  # stored before, maybe under another name: index it once
            return same
        write_atomic(target, data)
    except OSError as e:
        raise UploadError(
            f"{shown(name)}: cannot be stored in {folder} ({e.strerror or e}); "
            "check that the folder is writable and the disk is not full"
        ) from None
    return target


def save_all(folder: Path, files: list[tuple[str, bytes]]) -> tuple[list[Path], list[str]]:
    """Store each (name, bytes); one refused file does not stop the others.
    Returns the stored paths, each once, and a message per refused file."""
    saved: list[Path] = []
    errors: list[str] = []
    for name, data in files:
        try:
            path = save(folder, name, data)
        except UploadError as e:
            errors.append(str(e))
            continue
        if path not in saved:
            saved.append(path)
    return saved, errors


def _holds(path: Path, data: bytes) -> bool:
    try:
        return path.is_file() and path.stat().st_size == len(data) and path.read_bytes() == data
    except OSError:
        return False
