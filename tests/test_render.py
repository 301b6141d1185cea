import json
import re
import time
from html import unescape

import pytest
from conftest import INTERVIEW, FakeEmbedder
from markdown_it import MarkdownIt

from qa.answer import Answer, Quote
from qa.engine import Engine
from qa.feedback import disliked_cases, recheck
from qa.render import (
    REFUSAL,
    TURNS_AROUND,
    UNSURE,
    answer_html,
    answer_text,
    citation,
    citation_text,
    context_html,
    conversation_markdown,
    literal,
    shorten,
    transcript_page,
)
from qa.transcript import Passage, parse

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
    html = answer_html(answer)
    assert html.count("<blockquote") == 2 and "<mark>" in html and "qa-best" in html


def test_context_shows_the_sentence_in_its_turn_among_the_turns_around_it(engine):
    t = next(iter(engine.transcripts.values()))
    quote = engine.ask("annexation of Crimea in 2014", 1).quotes[0]
    html = context_html(t, quote.highlight_start, "/transcript/interview.txt")
    assert f'href="/transcript/interview.txt#p-{quote.highlight_start}"' in html
    assert "<strong>APA</strong>: Taking into account the important successes" in html
    marked = re.findall(r'<mark class="qa-here" id="qa-here">(.*?)</mark>', html)
    assert [unescape(m) for m in marked] == [t.text[quote.highlight_start : quote.highlight_end]]
    assert html.count("<strong>") == TURNS_AROUND + 1, "the last turn: the turns before it"
    middle = t.passages[t.turns[len(t.turns) // 2].passages[0]]
    html = context_html(t, middle.start, "/transcript/interview.txt")
    assert html.count("<strong>") == 2 * TURNS_AROUND + 1, "turns before it and after it"
    assert context_html(t, quote.highlight_start + 1, "/x") == "", "no sentence starts there"


def test_an_answer_says_whether_it_answers_is_unsure_or_refuses():
    q = _quote("We left at noon. Then it rained.", asked="When did you leave?")
    sure = answer_html(Answer("When?", True, [q], verdict="answer"), lambda q: "/transcript/talk.txt")
    unsure = answer_html(Answer("When?", False, [q], verdict="unsure"), lambda q: "/transcript/talk.txt")
    refused = answer_html(Answer("When?", False, [], closest=q, verdict="not in the interview"))
    assert "qa-answered" in sure and UNSURE not in sure and REFUSAL not in sure
    assert "qa-unsure" in unsure and UNSURE in unsure and "qa-maybe" in unsure and REFUSAL not in unsure
    assert REFUSAL in refused and UNSURE not in refused and "qa-best" not in refused
    assert f'<a class="qa-open" href="/transcript/talk.txt#p-{q.highlight_start}"' in sure
    # Each has its copy: plain text, with the verdict's words, and no path of the server.
    for html, words in ((sure, "We left"), (unsure, UNSURE), (refused, REFUSAL)):
        plain = unescape(re.search(r'<span class="qa-plain" hidden>(.*?)</span>', html).group(1))
        assert words in plain and "talk.txt" not in plain and "<" not in plain
    assert answer_text(Answer("When?", False, [q], verdict="unsure")).startswith(f"When?\n{UNSURE}\n\n“We")
    md = conversation_markdown([Answer("When?", False, [q], verdict="unsure")])
    assert f"## When?\n\n{UNSURE}\n\n> We left" in md


def test_a_joined_follow_up_offers_to_ask_it_on_its_own():
    q = _quote("In 2014.")
    html = answer_html(Answer("When?", True, [q], searched="When? Did it start?", verdict="answer"))
    assert "Taken as a follow-up" in html and '<button type="button" class="qa-alone">' in html
    assert '<span class="qa-q" hidden>When&#63;</span>' in html or "When?" in unescape(html)
    alone = answer_html(Answer("When?", True, [q], searched="When?", verdict="answer"))
    assert "qa-alone" not in alone


def test_long_questions_and_titles_are_cut_between_words():
    asked = "word " * 80 + "kingdom of the region?"
    html = answer_html(Answer("Why?", True, [_quote("Yes.", asked=asked, title="A very " * 20 + "end")]))
    shown = unescape(re.search(r"In reply to: “(.*?)”", html).group(1))
    assert shown.startswith("…") and shown.endswith("kingdom of the region?")
    assert all(w in {"word", "kingdom", "of", "the", "region?"} for w in shown[1:].split())
    title = unescape(re.search(r'<span class="qa-title">(.*?)</span>', html).group(1))
    assert title.endswith("…") and all(w in {"A", "very"} for w in title[:-1].split())
    assert shorten("kingdom of the region", 12, keep_end=True) == "…the region"
    assert shorten("kingdom of the region", 12) == "kingdom of…"


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
    quotes = [q for a in answers for q in a.quotes]
    assert _blockquote_texts(MarkdownIt().render(md)) == [" ".join(q.text.split()) for q in quotes]
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


# --- citations and the Markdown export, from hand-made quotes --------------------------------


def _quote(text: str, **fields) -> Quote:
    start = 10
    base = dict(text=text, source="talk.txt", start=start, end=start + len(text), score=0.5,
                speaker="Ann Lee", section="On work", asked="", title="A talk",
                highlight_start=start, highlight_end=start + 5, time="00:01:02")  # fmt: skip
    return Quote(**{**base, **fields})


def _blockquote_texts(html: str) -> list[str]:
    """What each rendered block quote shows, whitespace-normalized."""
    bodies = re.findall(r"<blockquote>(.*?)</blockquote>", html, re.DOTALL)
    return [" ".join(unescape(re.sub(r"<[^>]+>", " ", b)).split()) for b in bodies]


def test_markdown_cites_a_quote_that_spans_several_lines():
    q = _quote("We waited.\nThen we left.\n\nThat was all.", asked="What then?")
    cite = "Ann Lee, “On work”, at 00:01:02, A talk (talk.txt, characters 10–49)"
    assert citation(q) == cite
    assert citation_text(q) == f"“{q.text}”\n— {cite}\nIn reply to: “What then?”"
    md = conversation_markdown([Answer("What then?", True, [q])])
    assert "\n— Ann Lee, “On work”, at 00:01:02, A talk (characters 10–49)\n" in md  # no path
    assert "> We waited.\n> Then we left.\n>\n> That was all.\n" in md


HOSTILE = [
    "<img src=x onerror=alert(1)>",
    "<script>alert(1)</script>",
    "**bold** and __bold__, *em* and _em_",
    "> # heading",
    "[link](javascript:x) and ![img](x.png)",
    "&lt; &amp; &#60;",
    "1. item",
    "2) item",
    "- item",
    "+ item",
    "* item",
    "---",
    "Setext above",
    "===",
    "| a | b |",
    "|---|---|",
    "```",
    "~~~",
    "    indented code",
    "# h1",
    "###### h6 ##",
    "`code` and ~~strike~~",
    "<http://example.com> and <b>tag</b>",
    "back\\slash at the end\\",
    "[ref]: http://example.com",
    "[ref]",
]


def test_markdown_export_shows_hostile_quotes_as_their_literal_text():
    quotes = [_quote("\n".join(HOSTILE)), *(_quote(line) for line in HOSTILE)]
    questions = ["# Why <b>x</b> **now**? ##", "[a](javascript:x) - 1. | b |"]
    answers = [Answer(questions[0], True, quotes[:14]), Answer(questions[1], True, quotes[14:])]
    md = conversation_markdown(answers)
    html = MarkdownIt("commonmark").enable(["table", "strikethrough"]).render(md)
    assert set(re.findall(r"<(\w+)", html)) <= {"h1", "h2", "p", "blockquote"}, html
    assert html.count("<h1>") == 1 and html.count("<h2>") == 2
    assert _blockquote_texts(html) == [" ".join(q.text.split()) for q in quotes]
    headings = [unescape(h) for h in re.findall(r"<h2>(.*?)</h2>", html)]
    assert headings == questions


def test_markdown_export_stays_readable():
    q = _quote("It was (as I said) the end. It's over, isn't it? Yes: 3.5% - not more.")
    md = conversation_markdown([Answer("Was it (really) over?", True, [q])])
    assert "\\(" not in md and "\\." not in md and "\\'" not in md and "\\-" not in md
    assert f"> {q.text}\n" in md and "## Was it (really) over?\n" in md


# --- the quote in its place, in long talks ----------------------------------------------------


def _quote_of(p: Passage, title: str = "") -> Quote:
    return Quote(p.text, p.source, p.start, p.end, 0.5, p.speaker, p.section, p.asked, title,
                 p.start, p.end, p.time, p.role)  # fmt: skip


def test_context_of_a_long_turn_shows_only_the_quotes_neighbourhood():
    sentences = " ".join(f"Sentence number {i} is here." for i in range(2000))
    t = parse(f"Talk by Ann Lee\n\n- Why?\n\n- {sentences}\n", "talk.txt")
    answer = max(t.turns, key=lambda turn: len(turn.passages))
    assert len(answer.passages) == 2000
    p = t.passages[answer.passages[1000]]
    html = context_html(t, p.start, "/transcript/talk.txt")
    assert len(html.encode()) < 3000
    assert f'<mark class="qa-here" id="qa-here">{literal(p.text)}</mark>' in html
    assert literal("Sentence number 997 is") in html and literal("Sentence number 1003 is") in html
    assert literal("Sentence number 995 is") not in html and literal("Sentence number 1005 is") not in html
    assert html.count("…") == 2 and f'href="/transcript/talk.txt#p-{p.start}"' in html
    assert ": Why?" in html


def test_context_finds_the_turn_quickly_among_many():
    def talk(turns: int):
        text = "".join(f"Host: What about {i}?\nGuest: Answer {i} is here.\n" for i in range(turns // 2))
        return parse(text, "many.txt")

    def seconds(t, quotes) -> float:
        began = time.perf_counter()
        for q in quotes:
            context_html(t, q.highlight_start, "/transcript/many.txt")
        return time.perf_counter() - began

    small, large = talk(10), talk(5000)
    assert len(large.turns) == 5000
    near_end = [_quote_of(p) for p in large.passages[-1000:]]
    few = [_quote_of(small.passages[-1 - i % 5]) for i in range(1000)]
    assert seconds(large, near_end) < 3 * seconds(small, few) + 0.05
    html = context_html(large, near_end[-1].start, "/transcript/many.txt")
    assert literal("Answer 2499 is here.") in html and "<strong>Host</strong>" in html


def test_an_unsure_answer_says_so_and_still_shows_its_quotes(engine):
    from qa.render import REFUSAL, UNSURE, answer_text

    sure = engine.ask("Finland and Sweden joining", 2)
    unsure = Answer(sure.question, False, sure.quotes, 0.1, verdict="unsure")
    html, text = answer_html(unsure), answer_text(unsure)
    assert UNSURE in unescape(html) and REFUSAL not in unescape(html) and "<mark>" in html
    assert UNSURE not in unescape(answer_html(sure))
    assert UNSURE in text and sure.quotes[0].text in text
    assert UNSURE in conversation_markdown([unsure]) and REFUSAL not in conversation_markdown([unsure])
