"""The feedback file: only real verdicts are written, each record and the file are capped."""

import json

import pytest

from qa.answer import Answer, Quote
from qa.feedback import MAX_RECORD_BYTES, FeedbackLog, disliked_cases, record, verdict


def answer(question="Is NATO a party to the war?", text="NATO is not a party to the conflict."):
    quote = Quote(text, "data/interview.txt", 10, 10 + len(text), 1.0, "Xavier Colomina", "", "", "", 10,
                  10 + len(text))  # fmt: skip
    return Answer(question, True, [quote], 0.8)


@pytest.mark.parametrize("liked, expected", [(True, True), (False, False), ("Like", True), ("Dislike", False),
                                             ("", None), (None, None)])  # fmt: skip
def test_verdicts(liked, expected):
    assert verdict(liked) is expected


@pytest.mark.parametrize("liked", ["x" * 5_000_000, {"a": 1}, [True], 1.5, "maybe", b"yes"])
def test_anything_else_is_no_verdict(liked):
    with pytest.raises(ValueError, match="not a verdict"):
        verdict(liked)


def test_a_withdrawn_like_is_null_not_empty(tmp_path):
    log = FeedbackLog(tmp_path / "feedback.jsonl")
    assert log.append(record(answer(), verdict(""), [])) == ""
    assert json.loads((tmp_path / "feedback.jsonl").read_text(encoding="utf-8"))["liked"] is None


def test_records_and_the_file_are_capped(tmp_path):
    path = tmp_path / "sub" / "feedback.jsonl"
    log = FeedbackLog(path, max_bytes=5_000)
    huge = record(answer(question="x" * (MAX_RECORD_BYTES + 1)), False, [])
    assert "over the" in log.append(huge) and not path.exists()
    written = sum(log.append(record(answer(), False, ["earlier?"])) == "" for _ in range(100))
    assert 0 < written < 100 and path.stat().st_size <= 5_000
    assert "is full" in log.append(record(answer(), True, []))
    assert len(disliked_cases(path)) == 1  # the same dislike, once as a case


def test_an_unwritable_file_is_reported_not_raised(tmp_path):
    (tmp_path / "dir").mkdir()
    assert "cannot write" in FeedbackLog(tmp_path / "dir").append(record(answer(), True, []))


def test_a_like_event_records_only_a_verdict_on_an_answer_of_this_chat():
    from qa.chat import feedback_entry as verdict_record

    kept = [answer("Did Russia annex Crimea?"), None, answer("When?")]
    history = [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}] * 3
    entry = verdict_record(False, 5, history, kept)
    assert entry["liked"] is False and entry["question"] == "When?"
    assert entry["history"] == ["Did Russia annex Crimea?"]
    assert verdict_record(True, [1, None], history, kept)["question"] == "Did Russia annex Crimea?"
    for liked, index, hist, k in [
        ("x" * 5_000_000, 1, history, kept),  # not a verdict
        (True, 3, history, kept),  # the error message of the second question: no answer
        (True, 99, history, kept),
        (True, -1, history, kept),
        (True, "1", history, kept),
        (True, 1, "history", kept),
        (True, 1, history, {"not": "a list"}),
        (True, 1, history, []),  # a new client that asked nothing
    ]:
        assert verdict_record(liked, index, hist, k) is None, (index, hist, k)


def test_exports_stay_in_memory_and_bounded():
    from qa.chat import Exports

    exports = Exports()
    tokens = [exports.new() for _ in range(Exports.MAX_CONVERSATIONS + 10)]
    assert len(set(tokens)) == len(tokens)
    for t in tokens:
        exports.put(t, [answer()] * (Exports.MAX_ANSWERS + 5))
    assert exports.get(tokens[0]) is None and len(exports.get(tokens[-1])) == Exports.MAX_ANSWERS
    exports.put(tokens[-1], [])  # a new conversation empties its export
    assert exports.get(tokens[-1]) == []
