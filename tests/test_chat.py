"""The chat without a browser (qa/chat.py): examples, small talk, turns, export, feedback, uploads."""

import pytest
from conftest import INTERVIEW, FakeEmbedder

from qa.answer import Answer, Quote
from qa.conversation import small_talk
from qa.engine import Engine
from qa.render import answer_html, answer_text


@pytest.mark.integration
def test_every_example_is_answered_by_a_reply_not_by_itself(interview_engine):
    from qa import chat

    engine = interview_engine
    shown = chat.examples(engine)
    assert 4 <= len(shown) <= 6
    for q in shown:
        assert q.endswith("?") and len(q) <= chat.MAX_EXAMPLE_CHARS
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
    assert '<details class="qa-more"><summary>2 more quotes</summary>' in html
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


def chat_over_interview(tmp_path):
    from qa.chat import Chat
    from qa.feedback import FeedbackLog

    engine = Engine(
        INTERVIEW, tmp_path / "index", embedder=FakeEmbedder(), progress=False, log=lambda m: None
    )
    return Chat(engine, FeedbackLog(tmp_path / "feedback.jsonl"))


def test_a_conversation_is_taken_from_its_answers_not_from_the_page(tmp_path):
    talk = chat_over_interview(tmp_path)
    box, messages, answers = talk.respond("Did Russia annex Crimea?", [], answers=[])
    assert box == "" and len(messages) == 2 and answers[-1].question == "Did Russia annex Crimea?"
    _, messages, answers = talk.respond("hello", messages, answers=answers)
    assert answers[-1] is None and "Ask a question" in messages[-1]["content"]
    _, messages, answers = talk.respond("", messages, answers=answers)
    assert answers[-1] is None and "empty" in messages[-1]["content"]
    # The follow-up leans on the answers kept, never on the text of the page's messages ...
    shown = [{"role": m["role"], "content": "<b>Who wrote Hamlet?</b>"} for m in messages]
    _, _, later = talk.respond("When?", shown, answers=answers)
    assert later[-1].searched == "When? Did Russia annex Crimea?"
    # ... and a chat emptied, or a client sending no history, starts a new conversation.
    _, _, fresh = talk.respond("When?", [], answers=answers)
    assert fresh[-1].searched == "When?" and len(fresh) == 1
    # "Ask it on its own": the same conversation, the question searched alone.
    _, _, alone = talk.respond("When?", messages, answers=answers, alone=True)
    assert alone[-1].searched == "When?" and len(alone) == len(answers) + 1


def test_export_copy_and_judge(tmp_path):
    talk = chat_over_interview(tmp_path)
    _, messages, answers = talk.respond("Did Russia annex Crimea?", [], answers=[])
    token = talk.exports.new()
    link = talk.export(answers, token)
    assert f"/conversation/{token}.md" in link and 'class="qa-copy"' in messages[-1]["content"]
    assert talk.exports.get(token) == answers
    assert talk.export([], token) == "" and talk.exports.get(token) == []  # a new conversation
    assert talk.judge(False, 1, messages, answers) == ""
    assert talk.judge({"x": 1}, 1, messages, answers) == ""  # not a verdict: nothing written
    lines = (tmp_path / "feedback.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(lines) == 1 and '"liked": false' in lines[0]


def test_added_files_are_stored_indexed_and_reported(tmp_path, monkeypatch):
    from qa.chat import Chat
    from qa.feedback import FeedbackLog

    incoming = tmp_path / "incoming"
    incoming.mkdir()
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(incoming))
    engine = Engine(INTERVIEW, tmp_path / "index", embedder=FakeEmbedder(), progress=False,
                    log=lambda m: None, uploads=tmp_path / "uploads")  # fmt: skip
    talk = Chat(engine, FeedbackLog(tmp_path / "feedback.jsonl"))
    good, bad = incoming / "reef.txt", incoming / "bad.srt"
    good.write_text(
        "Host: What threatens reefs?\nMaya: Warming seas threaten coral reefs most.\n", encoding="utf-8"
    )
    bad.write_bytes(b"\x00\x01")
    steps = [status for status, _ in talk.add([str(good), str(bad)])]
    assert steps[0].startswith("Checking 2") and "Indexing 1" in steps[1]
    assert "searchable now" in steps[-1] and "bad&#46;srt" in steps[-1]  # as Markdown shows it
    assert not good.exists() and not bad.exists()  # Gradio's copies are gone; ours is kept
    assert any(k.startswith("uploads/") for k in engine.transcripts)
    assert "Warming seas" in engine.ask("What threatens coral reefs?", 1).quotes[0].text


STANDING = [
    ("What is the current state of cooperation between Azerbaijan and the alliance?", True),
    ("How do you assess the security situation in the South Caucasus region?", True),
    ("What about the process of joining NATO?", True),
    ("How can the Alliance contribute to accelerating the process?", False),
    ("Is there any mechanism that can be suggested for this?", False),
    ("Any progress on this issue?", False),
    ("What did they decide?", False),
    ("Why?", False),
    ("Was the agreement signed?", False),
    ("Was the agreement with Turkey signed?", True),
]


@pytest.mark.parametrize("question, alone", STANDING)
def test_an_example_must_mean_something_on_its_own(question, alone):
    from qa.chat import stands_alone

    assert stands_alone(question) is alone


def test_an_added_transcript_is_listed_titled_by_its_name_and_can_be_removed(tmp_path, monkeypatch):
    from qa.chat import Chat, loaded, transcripts_html
    from qa.feedback import FeedbackLog

    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path / "incoming"))
    engine = Engine(INTERVIEW, tmp_path / "index", embedder=FakeEmbedder(), progress=False,
                    log=lambda m: None, uploads=tmp_path / "uploads")  # fmt: skip
    talk = Chat(engine, FeedbackLog(tmp_path / "feedback.jsonl"))
    before = list(talk.examples)
    dropped = tmp_path / "incoming" / "rooftop bees podcast.txt"
    dropped.parent.mkdir()
    dropped.write_text("Host: Why do bees like rooftops in the city?\nAna: Rooftop bees find more "
                       "flowers in city parks than on farms.\n", encoding="utf-8")  # fmt: skip
    list(talk.add([str(dropped)]))
    [added] = [t for t in loaded(engine) if t["added"]]
    assert added["title"] == "rooftop bees podcast", "the name, not the hash it is stored under"
    assert sorted(added["speakers"]) == ["Ana", "Host"] and added["sentences"] == 2
    listing = transcripts_html(engine)
    assert "rooftop bees podcast</strong>: " in listing and listing.count('class="qa-remove"') == 1
    assert talk.refresh_examples() != before, "the added transcript's question is an example"
    quoted = engine.ask("Why do rooftop bees find more flowers?", 3).quotes
    assert any(q.title == "rooftop bees podcast" for q in quoted)
    # Only files added from the page can go; the interview stays.
    assert "Nothing was removed" in talk.remove("interview.txt") and INTERVIEW.exists()
    assert "Nothing was removed" in talk.remove("uploads/../../etc/passwd")
    assert "Removed" in talk.remove(added["key"])
    assert not any(t["added"] for t in loaded(engine)) and not list((tmp_path / "uploads").iterdir())
    after = engine.ask("Why do rooftop bees find more flowers?", 3)
    assert all(q.title != "rooftop bees podcast" for q in [*after.quotes, after.closest] if q)
    assert talk.refresh_examples() == before


def test_adding_from_the_page_is_on_by_default_only_on_loopback(tmp_path):
    from app import uploads_folder

    assert uploads_folder(None, "127.0.0.1", tmp_path) == tmp_path / "uploads"
    assert uploads_folder(None, "localhost", tmp_path) == tmp_path / "uploads"
    assert uploads_folder(None, "0.0.0.0", tmp_path) is None
    assert uploads_folder(None, "example.org", tmp_path) is None
    assert uploads_folder(tmp_path / "mine", "0.0.0.0", tmp_path) == tmp_path / "mine"


def test_the_source_panel_shows_only_loaded_sentences(tmp_path):
    talk = chat_over_interview(tmp_path)
    [key] = talk.engine.transcripts
    start = talk.engine.transcripts[key].passages[5].start
    html = talk.context(key, str(start))
    assert html.startswith('<h2 id="qa-panel-title">') and 'id="qa-here"' in html
    assert talk.context(key, "x") is None and talk.context(key, start + 1) is None
    assert talk.context("../README.md", start) is None and talk.context("nope.txt", 0) is None


def test_a_data_folder_named_uploads_is_not_removable_from_the_page(tmp_path):
    from qa.chat import Chat, loaded
    from qa.feedback import FeedbackLog

    own = tmp_path / "data" / "uploads" / "own.txt"
    own.parent.mkdir(parents=True)
    own.write_text("Host: Why bees?\nAna: Bees find more flowers in cities.\n", encoding="utf-8")
    engine = Engine(tmp_path / "data", tmp_path / "index", embedder=FakeEmbedder(), progress=False,
                    log=lambda m: None, uploads=tmp_path / "index" / "uploads")  # fmt: skip
    talk = Chat(engine, FeedbackLog(tmp_path / "feedback.jsonl"))
    [entry] = loaded(engine)
    assert entry["key"] == "uploads/own.txt" and not entry["added"]
    assert "Nothing was removed" in talk.remove("uploads/own.txt") and own.exists()
