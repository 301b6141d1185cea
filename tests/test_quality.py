"""The real packaged model over the real interview, judged on the public eval set."""

import pytest
from conftest import INTERVIEW, SHARED, read_exact

from qa import evaluate as ev
from qa.engine import Engine

pytestmark = pytest.mark.integration
EVAL = SHARED / "eval"


@pytest.fixture(scope="session")
def engine(tmp_path_factory):
    return Engine(INTERVIEW, tmp_path_factory.mktemp("index"), progress=False, log=lambda m: None)


@pytest.fixture(scope="session")
def questions():
    if not (EVAL / "questions.jsonl").exists():
        pytest.skip("the shared eval set is not beside the project")
    return ev.read_jsonl(EVAL / "questions.jsonl"), ev.read_jsonl(EVAL / "out_of_scope.jsonl")


def test_every_quote_is_verbatim_over_the_public_set(engine, questions):
    raw = read_exact(INTERVIEW)
    for q in questions[0] + questions[1]:
        answer = engine.ask(q["question"], 3)
        for quote in answer.quotes + ([answer.closest] if answer.closest else []):
            assert raw[quote.start : quote.end] == quote.text
            assert quote.speaker and quote.source.endswith("interview.txt")


def test_beats_the_bar_and_both_baselines(engine, questions):
    scores = {s.name: s for s in ev.evaluate(engine, *questions)}
    qa, bm25, dense = scores["qa"], scores["bm25"], scores["dense"]
    assert qa.hit1 >= 0.72 and qa.hit3 >= 0.88, qa
    assert qa.hit1 > max(bm25.hit1, dense.hit1) and qa.hit3 > max(bm25.hit3, dense.hit3)
    assert qa.quote_chars <= 300
    assert qa.answered >= 0.95


def test_plainly_off_topic_questions_are_refused(engine, questions):
    plain = [q for q in questions[1] if not q.get("hard")]
    refused = [not engine.ask(q["question"]).answered for q in plain]
    assert all(refused), [q["question"] for q, r in zip(plain, refused, strict=True) if not r]
    answer = engine.ask("What is the capital of France?")
    assert not answer.answered and answer.quotes == [] and answer.closest is not None


def test_paraphrases_find_the_answer(engine):
    cases = {
        "How many Russians fled the draft?": "More than one million Russians",
        "Is the alliance at war with Russia?": "NATO is not a party to this war.",
        "Can the alliance help build trust between Baku and Yerevan?": "NATO can play a supportive role",
        "Did Moscow run out of ammunition?": "Russia is running out of ammunition",
    }
    for question, expected in cases.items():
        texts = [q.text for q in engine.ask(question, 3).quotes]
        assert any(expected in t for t in texts), (question, texts)
