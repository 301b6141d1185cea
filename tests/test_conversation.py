import json

import pytest
from conftest import INTERVIEW, ROOT, SHARED, FakeEmbedder

from qa import evaluate as ev
from qa.conversation import is_follow_up, searched_as
from qa.engine import Engine

FOLLOW_UPS = ["Why?", "Since when?", "What about Georgia?", "And the EU?", "Is it formal there?"]


@pytest.mark.parametrize("question", FOLLOW_UPS)
def test_follow_ups_are_recognized(question):
    assert is_follow_up(question)


def test_questions_that_stand_alone_are_not_follow_ups():
    standalone = [q["question"] for q in ev.read_jsonl(ROOT / "eval" / "dev.jsonl")]
    public = SHARED / "eval" / "questions.jsonl"
    if public.exists():
        standalone += [q["question"] for q in ev.read_jsonl(public)]
    flagged = [q for q in standalone if is_follow_up(q)]
    assert len(flagged) <= 1, flagged


def test_he_alone_does_not_make_a_follow_up():
    for question in ["What does he think about China's role in the war?", "Did he talk about the Olympics?",
                     "Who is he?", "Who interviewed him?"]:  # fmt: skip
        assert not is_follow_up(question), question
    assert is_follow_up("What else did he underestimate?")
    assert searched_as("Did he talk about the Olympics?", ["Who decides whether Georgia can join?"]) == (
        "Did he talk about the Olympics?"
    )


def test_resolve_chains_follow_ups_and_drops_old_topics():
    assert searched_as("Why?", ["Where does Russia get drones?"]) == "Why? Where does Russia get drones?"
    assert searched_as("When?", ["Did Russia annex Crimea?", "Why?"]) == "When? Why? Did Russia annex Crimea?"
    assert searched_as("Which countries are joining NATO?", ["Why?"]) == "Which countries are joining NATO?"
    assert searched_as("Why?", ["Which countries are joining NATO?", "Did Russia annex Crimea?"]) == (
        "Why? Did Russia annex Crimea?"
    )
    assert searched_as("Why?", []) == "Why?"


def test_engine_takes_history(tmp_path):
    e = Engine(INTERVIEW, tmp_path / "i", embedder=FakeEmbedder(), progress=False, log=lambda m: None)
    answer = e.ask("When?", 3, history=["Did Russia annex Crimea?"])
    assert answer.searched == "When? Did Russia annex Crimea?" and answer.question == "When?"
    assert e.ask("When?", 3).searched == "When?"


@pytest.mark.integration
def test_follow_up_set_gains_over_ignoring_history(interview_engine):
    e = interview_engine
    rows = {s.name: s for s in ev.evaluate(e, ev.read_jsonl(ROOT / "eval" / "followups.jsonl"), [])}
    assert rows["qa"].hit3 >= 0.85 and rows["qa"].hit3 >= rows["qa, history ignored"].hit3 + 0.15
    lines = [json.loads(line) for line in (ROOT / "eval" / "followups.jsonl").read_text().splitlines()]
    assert all(line["history"] for line in lines)
