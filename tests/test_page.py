"""What the page shows, in-process: example questions, small talk, compact answers, copy text."""

import pytest
from conftest import INTERVIEW, FakeEmbedder

from qa.answer import Answer, Quote
from qa.conversation import small_talk
from qa.engine import Engine
from qa.render import answer_html, answer_text


@pytest.mark.integration
def test_every_example_is_answered_by_a_reply_not_by_itself(tmp_path):
    import app

    engine = Engine(INTERVIEW, tmp_path / "index", progress=False, log=lambda m: None)
    shown = app.examples(engine)
    assert 4 <= len(shown) <= 6
    for q in shown:
        assert q.endswith("?") and len(q) <= app.MAX_EXAMPLE_CHARS
        best = engine.ask(q, 1).quotes[0]
        assert best.role != "question" and q not in best.text, (q, best.text)


def test_asking_the_interviewers_own_question_quotes_the_reply(tmp_path):
    engine = Engine(
        INTERVIEW, tmp_path / "index", embedder=FakeEmbedder(), progress=False, log=lambda m: None
    )
    question = "What is the current state of cooperation between Azerbaijan and the alliance?"
    assert all(question not in q.text for q in engine.ask(question, 5).quotes)


SMALL_TALK = [("hello", "greeting"), ("Hi there!", "greeting"), ("good morning", "greeting"),
              ("ok thanks", "thanks"), ("Thank you very much.", "thanks"), ("bye", "thanks"), ("When?", ""),
              ("Hello, what does NATO think of Iran?", ""), ("hi NATO", ""),
              ("Thanks to whom did Finland join?", "")]  # fmt: skip


@pytest.mark.parametrize("text, kind", SMALL_TALK)
def test_small_talk(text, kind):
    assert small_talk(text) == kind


def quote(text, asked="Why?", title="Talk", source="talk.txt", start=0):
    return Quote(
        text, source, start, start + len(text), 1.0, "Ana", "Sec", asked, title, start, start + len(text)
    )


def test_an_answer_names_its_interview_and_question_once_and_folds_the_rest():
    answer = Answer(
        "Why?", True, [quote("One.", start=0), quote("Two.", start=10), quote("Three.", start=20)], 1.0
    )
    html = answer_html(answer)
    assert html.count('class="qa-title"') == 1 and html.count('class="qa-asked"') == 1
    assert '<details class="qa-more"><summary>2 more passages</summary>' in html
    assert "score" not in html
    other = Answer(
        "Why?", True, [quote("One."), quote("Two.", asked="How?", title="Other", source="b.txt")], 1.0
    )
    assert answer_html(other).count('class="qa-title"') == 2


def test_the_copy_text_is_plain_quotes_with_citations():
    text = answer_text(Answer("Why? <b>", True, [quote("It is <so> **bold**.")], 1.0))
    assert text.startswith("Why? <b>\n") and "“It is <so> **bold**.”\n— Ana" in text and "&#" not in text
    refused = answer_text(Answer("Who wrote Hamlet?", False, [], 0.1))
    assert "does not address" in refused
