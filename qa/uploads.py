"""Transcripts added from the page: checked by the data folder's rules, then stored under a name
of our own making.

The browser's file name is text to show and to slug, never a path: what is written is
`<slug of its stem>-<8 hex of the sha256 of the content><suffix>` inside the uploads folder, so
no name can reach outside it, and the same content is stored once. The engine reads the folder
beside the data folder (`Engine(uploads=...)`), its files keyed `uploads/NAME`.
"""

from __future__ import annotations

import hashlib
import os
import re
import stat
import time
from pathlib import Path

from embeddings.index import write_atomic
from qa.engine import MAX_UPLOAD_WINDOWS, file_label, upload_limit
from qa.retrieve import windows
from qa.transcript import SUFFIXES, TranscriptError, decode, parse

MAX_BYTES = 5_000_000
MAX_STEM = 60  # characters of the slug kept from the browser's name
MAX_SHOWN = 80  # characters of the browser's name quoted in a message
MAX_TOTAL = 100_000_000  # bytes of all stored uploads together


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
        transcript = parse(decode(data, label), label)
    except TranscriptError as e:
        raise UploadError(str(e)) from None
    most = upload_limit("QA_UPLOAD_MAX_WINDOWS", MAX_UPLOAD_WINDOWS)
    rows = len(windows(transcript.passages))
    if rows > most:
        raise UploadError(
            f"{label}: {rows:,} windows to index, over the limit of {most:,} per file added from "
            "the page (indexing it would hold this app's memory for too long); split it into "
            "parts, or put it in the data folder and run `python -m qa index`"
        )


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
        used, most = stored_bytes(folder), upload_limit("QA_UPLOADS_MAX_BYTES", MAX_TOTAL)
        if used + len(data) > most:
            raise UploadError(
                f"{shown(name)}: not stored: the transcripts added from the page already take "
                f"{used / 1e6:.1f} MB of the {most / 1e6:g} MB allowed; ask whoever runs this app to "
                "remove some from its uploads folder"
            )
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


def stored_bytes(folder: Path) -> int:
    """What the stored uploads take on disk (files set aside as rejected count too: they are
    still on the disk)."""
    total = 0
    for p in Path(folder).rglob("*"):
        try:
            st = p.lstat()
        except OSError:
            continue
        total += st.st_size if stat.S_ISREG(st.st_mode) else 0
    return total


def read_sent(path: str | Path, incoming: str | Path | None, max_bytes: int = MAX_BYTES) -> bytes:
    """The bytes of a file the page sent, read only if it is one: a regular file (not a link,
    device or pipe) inside Gradio's upload folder `incoming`. The event that names the file is
    the client's to write, so its path is a claim to check, not a file to open: a crafted event
    could otherwise name /etc/passwd, /dev/zero or a FIFO. At most `max_bytes` + 1 are read
    (the one more says it is too long). Raises UploadError."""
    label = shown(Path(path).name)
    if not incoming:
        raise UploadError(f"{label}: not a file sent from this page")
    folder = os.path.realpath(incoming)
    absolute = os.path.abspath(path)
    if os.path.commonpath([folder, os.path.realpath(absolute)]) != folder or os.path.islink(absolute):
        raise UploadError(f"{label}: not a file sent from this page")
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
    try:
        fd = os.open(absolute, flags)
    except OSError:
        raise UploadError(f"{label}: not a file sent from this page") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise UploadError(f"{label}: not a file sent from this page")
    with os.fdopen(fd, "rb") as f:
        return f.read(max_bytes + 1)


def sweep(incoming: Path, max_age: float, max_bytes: int) -> int:
    """Delete what Gradio received and no event came for: files older than `max_age` seconds,
    empty ones, then the oldest until the folder holds at most `max_bytes`. Returns the bytes
    freed. Anyone can POST a file to Gradio's upload route without ever adding it."""
    files = []
    for p in Path(incoming).rglob("*"):
        try:
            st = p.lstat()
        except OSError:
            continue
        if not stat.S_ISDIR(st.st_mode):
            files.append((st.st_mtime, st.st_size, p))
    freed, now, kept = 0, time.time(), 0
    for mtime, size, p in sorted(files, reverse=True):  # newest first: the oldest go first
        if now - mtime > max_age or size == 0 and now - mtime > 1 or kept + size > max_bytes:
            p.unlink(missing_ok=True)
            freed += size
        else:
            kept += size
    for d in sorted((p for p in Path(incoming).rglob("*") if p.is_dir()), reverse=True):
        try:
            d.rmdir()  # only when empty
        except OSError:
            pass
    return freed
