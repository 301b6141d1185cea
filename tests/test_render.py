import json
import re
from html import unescape

import pytest
from conftest import INTERVIEW, FakeEmbedder
from markdown_it import MarkdownIt

from qa.engine import Engine
from qa.feedback import disliked_cases, recheck
from qa.render import answer_html, context_html, conversation_markdown, literal, transcript_page
from qa.transcript import parse

PAYLOADS = [
    "<img src=x onerror=alert(1)>",
    "<script>alert(1)</script>",
    "[x](javascript:alert(1))",
    "**bold**",
]


@pytest.fixture(scope="module")
def engine(tmp_path_factory):
    return Engine(INTERVIEW, tmp_path_factory.mktemp("i"), embedder=FakeEmbedder(), progress=False,
                  log=lambda m: None)  # fmt: skip


@pytest.mark.parametrize("payload", PAYLOADS)
def test_literal_leaves_nothing_for_html_or_markdown(payload):
    html = MarkdownIt().render(literal(payload))
    assert "<img" not in html and "<script" not in html and "<strong" not in html and "<a " not in html
    shown = unescape(re.sub(r"<[^>]+>", "", html)).strip()
    assert shown == payload


def test_answer_html_marks_the_answering_sentence(engine):
    answer = engine.ask("Finland and Sweden are in the process of joining", 2)
    html = answer_html(answer, engine.texts)
    assert html.count("<blockquote") == 2 and "<mark>" in html and "qa-best" in html


def test_context_shows_the_whole_turn_and_its_question(engine):
    t = next(iter(engine.transcripts.values()))
    quote = engine.ask("annexation of Crimea in 2014", 1).quotes[0]
    html = context_html(quote, t, "/transcript/interview.txt")
    assert "<details" in html and f'#p-{quote.highlight_start}"' in html
    assert "Taking into account the important successes" in html
    assert "<mark>" in html and "Crimea in 2014" in html


def test_transcript_page_anchors_every_sentence_and_escapes_payloads():
    text = (
        'Talk with Eve, to Radio\n\n"<b>head</b>"\n\n- Why <script>alert(1)</script>?\n\n'
        "- Because **bold** [x](javascript:alert(1)).\n"
    )
    page = transcript_page(parse(text, "eve.txt"))
    assert "<script>alert" not in page and "<b>head" not in page
    for p in parse(text, "eve.txt").passages:
        assert f'id="p-{p.start}"' in page


def test_conversation_markdown_holds_every_quote_verbatim(engine):
    # An off-topic question the fake embedder refuses ("Who wrote Hamlet?" lands near a sentence by chance).
    answers = [engine.ask("Is NATO a party to this war?", 3), engine.ask("Who painted the Mona Lisa?"),
               engine.ask("When?", 3, history=["Did Russia annex Crimea?"])]  # fmt: skip
    md = conversation_markdown(answers)
    for a in answers:
        for q in a.quotes:
            assert all(f"> {line}" in md for line in q.text.splitlines() if line)
    tokens = MarkdownIt().parse(md)
    assert sum(t.type == "blockquote_open" for t in tokens) == sum(len(a.quotes) for a in answers)
    assert sum(t.type == "heading_open" and t.tag == "h2" for t in tokens) == 3
    assert not answers[1].answered and "does not address" in md and "Searched as" in md


def test_disliked_answers_become_cases(engine, tmp_path):
    shown = engine.ask("Is NATO a party to this war?", 3)
    liked = engine.ask("When did Russia annex Crimea?", 3)
    path = tmp_path / "feedback.jsonl"
    lines = [{"liked": False, "history": [], **shown.to_dict()}, {"liked": True, **liked.to_dict()},
             {"liked": False, "history": [], **shown.to_dict()}]  # fmt: skip
    path.write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    cases = disliked_cases(path)
    assert len(cases) == 1 and cases[0].question == "Is NATO a party to this war?"
    result = recheck(engine, cases)
    assert result == [{"question": cases[0].question, "still_disliked": True, "now": shown.quotes[0].text}]
