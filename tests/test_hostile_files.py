"""Files a real folder holds: odd names, pipes and link loops, edits while serving, long talks."""

import json
import os
import time
import tracemalloc

import pytest
from conftest import INTERVIEW, FakeEmbedder, read_exact

from bench.long_talk import srt
from qa.engine import Engine, QuestionError, file_label
from qa.transcript import parse

PODCAST = """Tom Hale: Welcome, Lena. Why did you move to Baku?
Lena Berg: I moved for the port project. The Caspian trade was growing fast.
Tom Hale: What worries you most about the region?
Lena Berg: Drought worries me most. Water levels in the Caspian Sea are falling every year.
"""


def engine(data, tmp_path, embedder=None, logs=None):
    return Engine(data, tmp_path / "index", embedder=embedder or FakeEmbedder(), progress=False,
                  log=logs.append if logs is not None else (lambda m: None))  # fmt: skip


def unescape(label: str) -> str:
    """The inverse of file_label, as a user would read it back."""
    out, i = [], 0
    while i < len(label):
        if label.startswith("\\\\", i):
            out.append("\\")
            i += 2
        elif label.startswith("\\x", i):
            n = int(label[i + 2 : i + 4], 16)
            out.append(chr(0xDC00 + n) if n >= 0x80 else chr(n))
            i += 4
        else:
            out.append(label[i])
            i += 1
    return "".join(out)


@pytest.mark.parametrize("name", ["plain.txt", "caf\udce9 notes.txt", "a\nb.txt", "back\\slash.txt",
                                  "tab\there.md", "café.txt"])  # fmt: skip
def test_file_labels_are_printable_and_reversible(name):
    label = file_label(name)
    label.encode("utf-8")  # no lone surrogate left
    assert "\n" not in label and "\t" not in label
    assert unescape(label) == name


def test_a_name_that_is_not_utf8_neither_breaks_answers_nor_json(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "interview.txt").write_bytes(INTERVIEW.read_bytes())
    os.mkdir(os.fsencode(data) + b"/sub")
    with open(os.fsencode(data) + b"/sub/caf\xe9 notes.txt", "w", encoding="utf-8") as f:
        f.write(PODCAST)
    with open(os.fsencode(data) + b"/line\nbreak.txt", "w", encoding="utf-8") as f:
        f.write(PODCAST.replace("Lena", "Mia"))
    e = engine(data, tmp_path)
    assert set(e.transcripts) == {"interview.txt", "sub/caf\\xe9 notes.txt", "line\\x0abreak.txt"}
    answer = e.ask("What worries Lena most about the region?", 3, source="sub/caf\\xe9 notes.txt")
    encoded = json.dumps(answer.to_dict(), ensure_ascii=False).encode("utf-8")
    assert answer.quotes and "Drought" in answer.quotes[0].text
    assert b"caf\\\\xe9 notes.txt" in encoded


def test_pipes_and_link_loops_are_skipped_by_name(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "interview.txt").write_bytes(INTERVIEW.read_bytes())
    os.mkfifo(data / "pipe.txt")
    (data / "loop.txt").symlink_to(data / "loop.txt")
    (data / "gone.md").symlink_to(tmp_path / "nowhere.md")
    (tmp_path / "elsewhere.txt").write_text(PODCAST, encoding="utf-8")
    (data / "linked.txt").symlink_to(tmp_path / "elsewhere.txt")
    logs = []
    e = engine(data, tmp_path, logs=logs)  # a FIFO opened for reading would block here forever
    skipped = {s["file"].rsplit("/", 1)[-1]: s["error"] for s in e.report.skipped}
    assert set(skipped) == {"pipe.txt", "loop.txt", "gone.md"}
    assert "not a regular file" in skipped["pipe.txt"] and "link" in skipped["loop.txt"]
    assert set(e.transcripts) == {"interview.txt", "linked.txt"}  # a link to a file is followed
    assert sum("skipped" in m for m in logs) == 3


def test_a_folder_of_skipped_files_says_so(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "bad.txt").write_bytes(b"\xff\xfe\x00junk")
    with pytest.raises(Exception, match="no readable transcripts; 1 file"):
        engine(data, tmp_path)
    (data / "bad.txt").unlink()
    with pytest.raises(Exception, match=r"no transcripts found \(\.txt, \.md, \.vtt, \.srt\)"):
        engine(data, tmp_path)


def test_an_edited_file_is_refused_until_reindexed_then_quoted_as_it_now_is(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    path = data / "interview.txt"
    path.write_bytes(INTERVIEW.read_bytes())
    (data / "podcast.txt").write_text(PODCAST, encoding="utf-8")
    fake = FakeEmbedder()
    e = engine(data, tmp_path, fake)
    question = "Which countries are joining NATO?"
    assert e.ask(question).answered
    text = read_exact(path)
    path.write_text("Corrections were made to this transcript.\n" + text.replace("Finland", "Findland"),
                    encoding="utf-8", newline="")  # fmt: skip
    with pytest.raises(QuestionError, match="interview.txt changed on disk") as refused:
        e.ask(question)
    assert refused.value.status == 503
    assert e.ask("What worries Lena most?", source="podcast.txt").quotes  # other files still answer
    calls = len(fake.calls)
    assert e.refresh() == ["interview.txt"]
    assert e.report.changed == ["interview.txt"] and e.report.unchanged == ["podcast.txt"]
    assert len(fake.calls) == calls + 1  # one batch: the changed file alone
    now = read_exact(path)
    for q in e.ask(question, 5).quotes:
        assert now[q.start : q.end] == q.text
    assert any("Findland" in q.text for q in e.ask("Findland and Sweden", 5).quotes)
    assert e.refresh() == []  # nothing changed since


def test_files_added_and_removed_while_serving(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "interview.txt").write_bytes(INTERVIEW.read_bytes())
    e = engine(data, tmp_path)
    (data / "podcast.txt").write_text(PODCAST, encoding="utf-8")
    assert e.refresh() == ["podcast.txt"]
    assert "Drought" in e.ask("What worries Lena most about the region?").quotes[0].text
    (data / "podcast.txt").unlink()
    assert e.refresh() == ["podcast.txt"] and set(e.transcripts) == {"interview.txt"}


def test_a_refresh_that_finds_nothing_readable_keeps_serving(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    path = data / "podcast.txt"
    path.write_text(PODCAST, encoding="utf-8")
    e = engine(data, tmp_path)
    path.write_bytes(b"\x00\x01 binary now")
    with pytest.raises(Exception, match="no readable transcripts"):
        e.refresh()
    with pytest.raises(QuestionError, match="changed on disk"):
        e.ask("What worries Lena most?")  # never a quote of a file that no longer holds it
    path.write_text(PODCAST.replace("Drought", "Heat"), encoding="utf-8")
    e.refresh()
    assert "Heat" in e.ask("What worries Lena most?").quotes[0].text


def build(kb: int, tmp_path) -> tuple[float, int]:
    path = tmp_path / f"talk-{kb}.srt"
    path.write_text(srt(kb), encoding="utf-8")
    tracemalloc.start()
    t0 = time.perf_counter()
    e = engine(path, tmp_path / f"i{kb}")
    seconds = time.perf_counter() - t0
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert e.ask("What did the speaker say about Ukraine?").quotes
    return seconds, peak


def test_a_long_talk_costs_time_and_memory_in_proportion(tmp_path):
    """One speaker for 40 KB and for 200 KB: five times the text, at most eight times the time
    and memory of our own code (the model is faked here; bench/long_talk.py runs the real one
    at 100 KB and 500 KB)."""
    t1, m1 = build(40, tmp_path)
    t5, m5 = build(200, tmp_path)
    assert t5 <= 8 * t1 and m5 <= 8 * m1, (t1, t5, m1, m5)


def test_replies_to_a_long_talk_do_not_each_carry_it():
    """A long speech that ends with a question, then a long reply: each window of the reply
    reads only the end of that speech as its lexical context, or the cost of the index grows
    with the product of the two (97 s for a 60 KB speech and a 30 KB reply)."""
    from qa.retrieve import _context, windows

    talk = " ".join(f"This is remark number {i} about the harbour and its cranes." for i in range(1000))
    reply = " ".join(f"My answer {i} is about the fishing boats." for i in range(50))
    passages = parse(f"Tom: {talk} What do you make of it?\nAnna: {reply}\n", "t.txt").passages
    replies = [w for w in windows(passages) if passages[w.first].speaker == "Anna"]
    assert passages[-1].asked.endswith("What do you make of it?") and len(passages[-1].asked) > 50_000
    for w in replies:
        context = _context(passages, w)
        assert "What do you make of it?" in context and len(context) < 3_000


def test_a_byte_order_mark_keeps_the_speakers_as_they_are(tmp_path):
    path = tmp_path / "bees.txt"
    path.write_text(
        "\ufeffSmith: How many hives do you keep, Mr Jones?\n"
        "Jones: I keep forty hives on the hill behind the farm.\n"
        "Smith: When do you harvest the honey?\n"
        "Jones: We harvest in late August, before the heather blooms.\n",
        encoding="utf-8",
    )
    e = engine(path, tmp_path)
    best = e.ask("How many hives does Jones keep?").quotes[0]
    assert best.speaker == "Jones" and "forty hives" in best.text
    assert best.asked == "How many hives do you keep, Mr Jones?"
