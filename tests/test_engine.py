"""qa.engine.Engine with the fake embedder: what `ask` accepts, filters, quotes and refuses."""

import os

import pytest
from conftest import INTERVIEW, FakeEmbedder, read_exact

from qa.engine import (
    FALLBACK_CALIBRATION,
    MAX_K,
    MAX_QUESTION_CHARS,
    Engine,
    QuestionError,
    check_k,
    clean_question,
    file_label,
)

PODCAST = """Tom Hale: Welcome, Lena. Why did you move to Baku?
Lena Berg: I moved for the port project. The Caspian trade was growing fast.
Tom Hale: What worries you most about the region?
Lena Berg: Drought worries me most. Water levels in the Caspian Sea are falling every year.
"""
NATO = "Is NATO a party to this war?"


@pytest.fixture
def data(tmp_path):
    folder = tmp_path / "data"
    folder.mkdir()
    (folder / "interview.txt").write_bytes(INTERVIEW.read_bytes())
    (folder / "podcast.txt").write_text(PODCAST, encoding="utf-8")
    return folder


@pytest.fixture
def fake():
    return FakeEmbedder()


@pytest.fixture
def engine(data, tmp_path, fake):
    return Engine(data, tmp_path / "index", embedder=fake, progress=False, log=lambda m: None)


@pytest.mark.parametrize(
    "question, k, status, says",
    [
        ("", 3, 400, "empty"),
        (" \t\x00\ufffd ", 3, 400, "empty"),
        ("x" * (MAX_QUESTION_CHARS + 1), 3, 413, str(MAX_QUESTION_CHARS)),
        (NATO, 0, 400, f"1 to {MAX_K}"),
        (NATO, MAX_K + 1, 400, f"1 to {MAX_K}"),
        (NATO, "three", 400, f"1 to {MAX_K}"),
    ],
)
def test_ask_rejects_bad_input_with_its_status(engine, question, k, status, says):
    with pytest.raises(QuestionError, match=says) as e:
        engine.ask(question, k)
    assert e.value.status == status


def test_unknown_source_or_speaker_names_what_is_known(engine):
    with pytest.raises(QuestionError, match="unknown source 'nope.txt'") as e:
        engine.ask(NATO, source="nope.txt")
    assert "interview.txt" in str(e.value) and "podcast.txt" in str(e.value)
    with pytest.raises(QuestionError, match="unknown speaker 'Nobody'") as e:
        engine.ask(NATO, speaker="Nobody")
    for name in ("APA", "Xavier Colomina", "Lena Berg", "Tom Hale"):
        assert name in str(e.value)


def test_filters_keep_only_the_file_and_speaker_asked_for(engine):
    engine.calibration = {**FALLBACK_CALIBRATION, "answer": 0.0, "floor": -1.0}  # never refuse: filters alone
    question = "security in the Caspian region"
    sources = lambda **f: {q.source for q in engine.ask(question, 5, **f).quotes}  # noqa: E731
    assert sources() == {"data/podcast.txt", "data/interview.txt"}  # as the user can open them
    assert sources(source="interview.txt") == {"data/interview.txt"}
    assert sources(source="podcast.txt") == sources(source="data/podcast.txt") == {"data/podcast.txt"}
    assert {q.speaker for q in engine.ask(question, 5).quotes} == {"APA", "Xavier Colomina", "Lena Berg"}
    assert {q.speaker for q in engine.ask(question, 5, speaker="Tom Hale").quotes} == {"Tom Hale"}
    both = engine.ask(question, 5, source="podcast.txt", speaker="Lena Berg")
    assert both.quotes and {(q.source, q.speaker) for q in both.quotes} == {("data/podcast.txt", "Lena Berg")}


def test_quotes_are_the_files_own_text_at_their_offsets(engine):
    for question in (NATO, "What worries Lena most?", "Caspian Sea water levels", "Crimea 2014"):
        answer = engine.ask(question, 5)
        assert answer.quotes
        for q in answer.quotes:
            assert read_exact(q.source)[q.start : q.end] == q.text  # relative to the cwd
            assert q.start <= q.highlight_start < q.highlight_end <= q.end


def test_a_follow_up_is_searched_with_the_question_it_follows(engine):
    alone = engine.ask("Why?")
    assert alone.searched == "Why?" and not alone.answered  # too little to go on by itself
    follow_up = engine.ask("Why?", history=[NATO])
    assert follow_up.searched == f"Why? {NATO}" and follow_up.answered
    assert any("NATO is not a party" in q.text for q in follow_up.quotes)
    # A question that stands on its own is searched alone, whatever came before.
    assert engine.ask("What worries Lena most?", history=[NATO]).searched == "What worries Lena most?"


def test_below_the_thresholds_it_is_unsure_or_refuses_and_shows_the_closest(engine):
    engine.calibration = {**FALLBACK_CALIBRATION, "answer": 1.01, "floor": 1.01}
    answer = engine.ask(NATO)
    assert not answer.answered and answer.quotes == [] and answer.verdict == "not in the interview"
    assert answer.closest is not None and "NATO" in answer.closest.text
    assert answer.confidence < 1.01
    engine.calibration = {**FALLBACK_CALIBRATION, "answer": 1.01, "floor": -1.0}
    unsure = engine.ask(NATO, 2)
    assert unsure.verdict == "unsure" and not unsure.answered and len(unsure.quotes) == 2
    engine.calibration = {**FALLBACK_CALIBRATION, "answer": answer.confidence - 1e-4, "floor": -1.0}
    assert engine.ask(NATO).answered  # the same question at its confidence is answered


def test_refresh_with_nothing_changed_re_embeds_nothing(engine, fake):
    calls = len(fake.calls)
    assert engine.refresh() == [] and engine.refresh() == []
    assert sum(fake.calls[calls:]) == 0 and engine.ask(NATO).answered  # no text embedded


def test_a_file_touched_on_disk_is_refused_until_refreshed(engine, data, fake):
    path = data / "interview.txt"
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))  # same text, new stamp
    with pytest.raises(QuestionError, match="interview.txt changed on disk") as e:
        engine.ask(NATO, source="interview.txt")
    assert e.value.status == 503
    assert engine.ask("What worries Lena most?", source="podcast.txt").quotes  # the other file answers
    calls = len(fake.calls)
    assert engine.refresh() == ["interview.txt"]
    assert engine.report.unchanged == ["interview.txt", "podcast.txt"]  # same text: nothing re-embedded
    assert sum(fake.calls[calls:]) == 0 and engine.report.embedded_windows == 0
    assert engine.ask(NATO, source="interview.txt").answered


@pytest.mark.parametrize(
    "raw, clean",
    [
        ("x" * MAX_QUESTION_CHARS, "x" * MAX_QUESTION_CHARS),  # the limit itself is allowed
        ("a" + " " * 5000 + "b", "a b"),  # measured after spaces are collapsed
        ("NATO\r\nand\u200bIran", "NATO and\u200bIran"),  # a zero-width space is text (Cf), not control
        ("\x1b[31mred\x1b[0m", "[31mred [0m"),
    ],
)
def test_clean_question_edges(raw, clean):
    assert clean_question(raw) == clean


@pytest.mark.parametrize("k, ok", [(" 5 ", 5), (MAX_K, MAX_K), ("1.5", None), (None, None), (2.0, None)])
def test_check_k_edges(k, ok):
    if ok is None:
        with pytest.raises(QuestionError):
            check_k(k)
    else:
        assert check_k(k) == ok


def test_file_labels_of_names_that_look_alike_stay_apart():
    """A name holding a backslash escape's own spelling is not confused with the escaped byte."""
    names = ["caf\udce9.txt", "caf\\xe9.txt", "café.txt", "a\nb.txt", "a\\x0ab.txt", "a\\\\x0ab.txt"]
    labels = [file_label(n) for n in names]
    assert len(set(labels)) == len(names)
    assert all(label.isprintable() for label in labels)
    assert labels[:2] == ["caf\\xe9.txt", "caf\\\\xe9.txt"] and labels[2] == "café.txt"
