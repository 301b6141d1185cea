"""Transcripts added from the page: stored under names of our own, indexed alone, kept."""

import os
import re
import shutil
import threading
from pathlib import Path

import pytest
from conftest import INTERVIEW, FakeEmbedder, read_exact

from qa.engine import Engine
from qa.retrieve import windows
from qa.transcript import parse
from qa.uploads import MAX_BYTES, UploadError, save, save_all

CORAL = """Reef Talk: an interview with Maya Lin

Sam Ortiz: Welcome, Maya. How long have you studied coral reefs?
Maya Lin: For twenty years, mostly on the Great Barrier Reef.
Sam Ortiz: What worries you most when you dive there now?
Maya Lin: Warming seas are the biggest threat to coral reefs. Heat waves cause mass bleaching, and
bleached corals starve.
Sam Ortiz: Can the reefs recover?
Maya Lin: Some recover within a decade if the water cools again.
"""
QUESTION = "What is the biggest threat to coral reefs?"
STORED = re.compile(r"[a-z0-9_-]{1,60}-[0-9a-f]{8}\.(txt|md|vtt|srt)")


@pytest.fixture
def data(tmp_path) -> Path:
    folder = tmp_path / "data"
    folder.mkdir()
    shutil.copy(INTERVIEW, folder / "interview.txt")
    return folder


def engine(data, tmp_path, embedder=None, uploads=None):
    return Engine(data, tmp_path / "index", embedder=embedder or FakeEmbedder(), progress=False,
                  log=lambda m: None, uploads=uploads or tmp_path / "uploads")  # fmt: skip


def rows(text: str) -> int:
    return len(windows(parse(text, "x").passages))


def test_an_upload_is_indexed_alone_then_quoted(data, tmp_path):
    fake = FakeEmbedder()
    e = engine(data, tmp_path, fake)  # the uploads folder does not exist yet: no uploads
    assert set(e.transcripts) == {"interview.txt"}
    path = save(tmp_path / "uploads", "Reef Talk #12.txt", CORAL.encode("utf-8"))
    key = f"uploads/{path.name}"
    calls = len(fake.calls)
    assert e.refresh() == [key]
    assert e.report.added == [key] and e.report.unchanged == ["interview.txt"]
    assert fake.calls[calls:] == [rows(CORAL)]  # one batch: the upload's windows, nothing else
    best = e.ask(QUESTION).quotes[0]
    assert "Warming seas are the biggest threat" in best.text and best.speaker == "Maya Lin"
    assert e.state.keys[best.source].startswith("uploads/")
    assert read_exact(path)[best.start : best.end] == best.text
    assert e.ask("How does bleaching harm corals?", source=key).quotes
    assert e.refresh() == []


def test_uploads_are_still_there_after_a_restart_with_nothing_embedded(data, tmp_path):
    e = engine(data, tmp_path)
    path = save(tmp_path / "uploads", "reef.md", CORAL.encode("utf-8"))
    e.refresh()
    fake = FakeEmbedder()
    again = engine(data, tmp_path, fake)
    assert set(again.transcripts) == {"interview.txt", f"uploads/{path.name}"}
    assert again.report.embedded_windows == 0 and sum(fake.calls) == 0
    assert "Warming seas" in again.ask(QUESTION).quotes[0].text


class Gated(FakeEmbedder):
    """Holds any batch of passages (not a one-line question) until released."""

    def __init__(self) -> None:
        super().__init__()
        self.armed = False
        self.entered, self.release = threading.Event(), threading.Event()

    def encode_tokens(self, texts, batch_size: int = 64, progress: bool = False):
        if self.armed and len(texts) > 1:
            self.entered.set()
            assert self.release.wait(60)
        return super().encode_tokens(texts, batch_size, progress)


def test_a_question_asked_while_indexing_is_answered_from_what_is_indexed(data, tmp_path):
    gated = Gated()
    e = engine(data, tmp_path, gated)
    path = save(tmp_path / "uploads", "reef.txt", CORAL.encode("utf-8"))
    gated.armed = True
    worker = threading.Thread(target=e.refresh)
    worker.start()
    try:
        assert gated.entered.wait(60)
        assert e.pending == [f"uploads/{path.name}"]
        answer = e.ask("Which countries are joining NATO?")
        assert answer.answered and {e.state.keys[q.source] for q in answer.quotes} == {"interview.txt"}
        assert all(not q.source.endswith(path.name) for q in e.ask(QUESTION, 5).quotes)
    finally:
        gated.release.set()
        worker.join(60)
    assert "Warming seas" in e.ask(QUESTION).quotes[0].text


HOSTILE = ["../../etc/passwd.txt", "/abs/x.md", "a\\b.srt", "con.txt", "\x00.txt", "x" * 300 + ".txt",
           ".txt", "..txt", ".hidden.md", "x.txt/../../y.txt", "-rf.TXT", "caf\udce9 notes.txt",
           "C:\\Windows\\system.ini.vtt", "line\nbreak.md"]  # fmt: skip


def test_hostile_names_stay_inside_the_folder(tmp_path):
    folder = tmp_path / "uploads"
    written = []
    for i, name in enumerate(HOSTILE):
        path = save(folder, name, (CORAL + f"Sam Ortiz: Thank you, number {i}.\n").encode("utf-8"))
        assert path.parent == folder and STORED.fullmatch(path.name), (name, path)
        written.append(path)
    for name in ["passwd", "../../x", "", ".", "x.txt/", "x.txt\x00", "x.exe", "a.txt.exe"]:
        with pytest.raises(UploadError, match="not a transcript file"):
            save(folder, name, CORAL.encode("utf-8"))
    assert len(set(written)) == len(HOSTILE)
    assert set(tmp_path.rglob("*")) == {folder, *written}


BAD = [
    ("big.txt", CORAL.encode("utf-8") * (MAX_BYTES // len(CORAL) + 1), r"over the limit of 5 MB"),
    ("notes.pdf", b"%PDF-1.7 ...", r"not a transcript file; upload a \.txt, \.md, \.vtt or \.srt"),
    ("photo.txt", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "looks like a binary file"),
    ("windows.txt", CORAL.encode("utf-16"), "UTF-16 text; save it as UTF-8"),
    ("empty.md", b" \n\n", "transcript is empty"),
    ("latin1.txt", CORAL.replace("Lin", "Lín").encode("latin-1"), "not UTF-8 text .* save it as UTF-8"),
    ("essay.txt", b"Reefs are old. They are also fragile.\n", "no interview turns found; expected lines"),
    ("cues.vtt", b"WEBVTT\n\n00:00:01.000 --> 00:00:02.000\n\n", "subtitle file with no cue text"),
]


@pytest.mark.parametrize(("name", "raw", "why"), BAD, ids=[b[0] for b in BAD])
def test_a_file_that_cannot_be_read_is_refused_and_nothing_is_written(tmp_path, name, raw, why):
    with pytest.raises(UploadError, match=why) as refused:
        save(tmp_path / "uploads", name, raw)
    assert str(refused.value).startswith(f"{name}: ")
    assert list(tmp_path.iterdir()) == []


def test_a_folder_that_cannot_be_written_says_so(tmp_path):
    (tmp_path / "uploads").write_text("a file where the folder should be", encoding="utf-8")
    with pytest.raises(UploadError, match="reef.txt: cannot be stored in .*check that the folder"):
        save(tmp_path / "uploads", "reef.txt", CORAL.encode("utf-8"))


def test_the_same_content_is_stored_once(tmp_path):
    folder = tmp_path / "uploads"
    first = save(folder, "reef.txt", CORAL.encode("utf-8"))
    assert save(folder, "reef.txt", CORAL.encode("utf-8")) == first
    assert save(folder, "Reef (copy).md", CORAL.encode("utf-8")) == first
    other = save(folder, "reef.txt", (CORAL + "Sam Ortiz: Thanks.\n").encode("utf-8"))
    assert other != first and sorted(folder.iterdir()) == sorted([first, other])


def test_save_all_keeps_the_good_files_and_reports_the_bad(tmp_path):
    folder = tmp_path / "uploads"
    saved, errors = save_all(folder, [("reef.txt", CORAL.encode("utf-8")), ("photo.md", b"\x00\x01\x02"),
                                      ("reef again.txt", CORAL.encode("utf-8"))])  # fmt: skip
    assert len(saved) == 1 and saved[0].parent == folder and list(folder.iterdir()) == saved
    assert errors == ["photo.md: looks like a binary file, not a text transcript"]


def test_upload_keys_never_collide_with_data_keys(data, tmp_path):
    inside = data / "uploads"  # an uploads folder inside the data folder is read once, as uploads
    path = save(inside, "reef.txt", CORAL.encode("utf-8"))
    e = engine(data, tmp_path, uploads=inside)
    assert set(e.transcripts) == {"interview.txt", f"uploads/{path.name}"}
    elsewhere = tmp_path / "elsewhere"
    save(elsewhere, "reef.txt", CORAL.encode("utf-8"))  # the same key as the data file above
    e = engine(data, tmp_path, uploads=elsewhere)
    assert set(e.transcripts) == {"interview.txt", f"uploads/{path.name}"}
    assert e.transcripts[f"uploads/{path.name}"].source == f"data/uploads/{path.name}"
    assert "same name" in e.report.skipped[0]["error"]


def test_no_transcripts_anywhere_is_still_an_error(tmp_path):
    (tmp_path / "data").mkdir()
    with pytest.raises(Exception, match="no transcripts found"):
        engine(tmp_path / "data", tmp_path)
    path = save(tmp_path / "uploads", "reef.txt", CORAL.encode("utf-8"))
    assert set(engine(tmp_path / "data", tmp_path).transcripts) == {f"uploads/{path.name}"}


def test_a_broken_upload_beside_one_data_file_is_skipped_not_fatal(tmp_path):
    (tmp_path / "uploads").mkdir()
    (tmp_path / "uploads" / "broken.txt").write_bytes(b"\x00\x01")  # put there by hand
    e = engine(INTERVIEW, tmp_path)
    assert set(e.transcripts) == {"interview.txt"} and "binary" in e.report.skipped[0]["error"]


def test_an_upload_not_yet_indexed_waits_for_the_first_refresh_when_deferred(data, tmp_path):
    engine(data, tmp_path)  # the data folder's index, saved
    path = save(tmp_path / "uploads", "reef.txt", CORAL.encode("utf-8"))
    fake = FakeEmbedder()
    e = Engine(data, tmp_path / "index", embedder=fake, progress=False, log=lambda m: None,
               uploads=tmp_path / "uploads", defer_uploads=True)  # fmt: skip
    assert set(e.transcripts) == {"interview.txt"} and sum(fake.calls) == 0  # served before embedding
    assert e.refresh() == [f"uploads/{path.name}"] and "Warming seas" in e.ask(QUESTION).quotes[0].text
    again = Engine(data, tmp_path / "index", embedder=FakeEmbedder(), progress=False, log=lambda m: None,
                   uploads=tmp_path / "uploads", defer_uploads=True)  # fmt: skip
    assert f"uploads/{path.name}" in again.transcripts  # indexed before: served at once


def test_an_upload_that_killed_the_app_while_indexed_is_set_aside(data, tmp_path):
    path = save(tmp_path / "uploads", "reef.txt", CORAL.encode("utf-8"))
    (tmp_path / "uploads" / ".indexing").write_text(path.name, encoding="utf-8")  # left by a killed process
    logged: list[str] = []
    e = Engine(data, tmp_path / "index", embedder=FakeEmbedder(), progress=False, log=logged.append,
               uploads=tmp_path / "uploads")  # fmt: skip
    assert set(e.transcripts) == {"interview.txt"} and not path.exists()
    assert (tmp_path / "uploads" / "rejected" / path.name).exists()
    assert "stopped the app" in e.rejected[path.name] and any("set aside" in m for m in logged)
    assert not (tmp_path / "uploads" / ".indexing").exists()


def test_an_upload_over_its_budget_is_set_aside_and_the_rest_served(data, tmp_path, monkeypatch):
    e = engine(data, tmp_path)
    big = save(tmp_path / "uploads", "reef.txt", CORAL.encode("utf-8"))
    monkeypatch.setenv("QA_UPLOAD_MAX_WINDOWS", "5")  # fewer than this file's windows
    e.refresh()
    assert "over the limit of 5" in e.rejected[big.name] and set(e.transcripts) == {"interview.txt"}
    monkeypatch.setenv("QA_UPLOAD_MAX_WINDOWS", "1000")
    monkeypatch.setenv("QA_UPLOAD_BASE_SECONDS", "-1")  # a deadline passed before the first chunk
    monkeypatch.setenv("QA_UPLOAD_MIN_RATE", "1000000000")
    slow = save(tmp_path / "uploads", "slow.txt", CORAL.replace("Maya", "Mia").encode("utf-8"))
    e.refresh()
    assert "budget" in e.rejected[slow.name] and set(e.transcripts) == {"interview.txt"}
    assert sorted(p.name for p in (tmp_path / "uploads" / "rejected").iterdir()) == sorted(
        [big.name, slow.name]
    )
    assert e.ask("Which countries are joining NATO?").answered


def test_the_total_cap_refuses_with_a_message(tmp_path, monkeypatch):
    monkeypatch.setenv("QA_UPLOADS_MAX_BYTES", str(len(CORAL) + 10))
    save(tmp_path / "uploads", "reef.txt", CORAL.encode("utf-8"))
    with pytest.raises(UploadError, match="more.txt: not stored: .* MB allowed"):
        save(tmp_path / "uploads", "more.txt", (CORAL + "Sam Ortiz: Thanks.\n").encode("utf-8"))


def test_a_sent_file_is_read_only_from_the_upload_folder(tmp_path):
    from qa.uploads import read_sent

    incoming = tmp_path / "incoming"
    (incoming / "x").mkdir(parents=True)
    (incoming / "x" / "ok.txt").write_bytes(b"hello")
    (tmp_path / "secret.txt").write_bytes(b"secret")
    (incoming / "x" / "link.txt").symlink_to(tmp_path / "secret.txt")
    os.mkfifo(incoming / "x" / "pipe.txt")
    assert read_sent(incoming / "x" / "ok.txt", incoming) == b"hello"
    assert read_sent(incoming / "x" / "ok.txt", incoming, max_bytes=2) == b"hel"  # one past the limit
    sent = incoming / "x"
    for path in [tmp_path / "secret.txt", sent / "link.txt", sent / "pipe.txt", "/dev/zero",
                 sent / ".." / ".." / "secret.txt", sent]:  # fmt: skip
        with pytest.raises(UploadError, match="not a file sent from this page"):
            read_sent(path, incoming)
    with pytest.raises(UploadError):
        read_sent(incoming / "x" / "ok.txt", None)


def test_no_markup_from_uploads_becomes_an_example(data, tmp_path):
    from qa.chat import examples

    e = engine(data, tmp_path)
    text = (b"Sam: <script>alert(1)</script> Why do reefs bleach so often?\n"
            b"Maya: Warming seas bleach the reefs every summer now.\n")  # fmt: skip
    save(tmp_path / "uploads", "x.txt", text)
    e.refresh()
    assert len(e.transcripts) == 2 and all("script" not in q for q in examples(e))
