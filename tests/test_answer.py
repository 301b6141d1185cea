import pytest
from conftest import INTERVIEW, FakeEmbedder, read_exact

from qa.answer import VERDICTS, Answer, build
from qa.engine import Engine, QuestionError, check_k, clean_question
from qa.retrieve import MAX_SENTENCES, MAX_WINDOW_CHARS, Hit
from qa.transcript import ANSWER, QUESTION, TITLE, parse_file


@pytest.fixture
def engine(tmp_path):
    return Engine(INTERVIEW, tmp_path / "index", embedder=FakeEmbedder(), progress=False, log=lambda m: None)


def test_quotes_are_verbatim_and_within_one_turn(engine):
    raw = read_exact(INTERVIEW)
    for q in ["Is NATO a party to this war?", "What about Iranian drones?", "Crimea 2014", "Finland Sweden"]:
        answer = engine.ask(q, 5)
        for quote in answer.quotes:
            assert raw[quote.start : quote.end] == quote.text
            assert quote.start <= quote.highlight_start < quote.highlight_end <= quote.end
            inside = [p for p in engine.passages if p.start < quote.end and p.end > quote.start]
            assert len({p.turn for p in inside}) == 1 and 1 <= len(inside) <= MAX_SENTENCES
            assert len(quote.text) <= MAX_WINDOW_CHARS or len(inside) == 1
            assert (inside[0].start, inside[-1].end) == (quote.start, quote.end)
            assert quote.role == inside[0].role and quote.speaker == inside[0].speaker
        spans = [(x.start, x.end) for x in answer.quotes]
        assert all(a[1] <= b[0] or b[1] <= a[0] for i, a in enumerate(spans) for b in spans[i + 1 :])


def test_a_window_is_quoted_whole_with_its_best_sentence_highlighted():
    t = parse_file(INTERVIEW)
    i = next(i for i, p in enumerate(t.passages) if p.text == "This is unacceptable.")
    hit = Hit(i - 1, i, i, 1.0)
    answer = build("q", [hit], t.passages, {t.source: t.text}, {t.source: "T"}, 1, True, 1.0)
    quote = answer.quotes[0]
    assert quote.text.endswith("This is unacceptable.")
    assert quote.text.startswith("So Russia is using Iranian-made drones")
    assert quote.text == t.text[t.passages[i - 1].start : t.passages[i].end]
    assert (quote.highlight_start, quote.highlight_end) == (t.passages[i].start, t.passages[i].end)
    assert quote.score == 1.0 and quote.title == "T" and quote.role == ANSWER
    assert quote.speaker == "Xavier Colomina" and quote.asked.startswith("Speaking of the region")


def test_quotes_share_no_sentence_and_carry_their_role():
    t = parse_file(INTERVIEW)
    hits = [Hit(3, 5, 4, 3.0), Hit(4, 4, 4, 2.9), Hit(5, 6, 6, 2.8), Hit(0, 0, 0, 2.0), Hit(1, 2, 1, 1.0)]
    answer = build("q", hits, t.passages, {t.source: t.text}, {}, 3, True, 1.0)
    assert [(q.start, q.end) for q in answer.quotes] == [
        (t.passages[3].start, t.passages[5].end),
        (t.passages[0].start, t.passages[0].end),
        (t.passages[1].start, t.passages[2].end),
    ]
    assert [q.role for q in answer.quotes] == [ANSWER, TITLE, QUESTION]
    assert answer.quotes[1].text == t.title and answer.quotes[1].speaker == "Title"


def test_refusal_quotes_nothing_but_shows_the_closest():
    t = parse_file(INTERVIEW)
    hits = [Hit(3, 4, 4, 0.1), Hit(5, 5, 5, 0.05)]
    answer = build("q", hits, t.passages, {t.source: t.text}, {}, 3, False, 0.1)
    assert not answer.answered and answer.quotes == []
    assert answer.closest is not None and answer.closest.highlight_start == t.passages[4].start
    assert answer.closest.start == t.passages[3].start and answer.closest.end == t.passages[4].end
    d = answer.to_dict()
    assert set(d) >= {"question", "answered", "quotes"} and d["quotes"] == []


def test_three_verdicts_and_answered_only_for_an_answer():
    t = parse_file(INTERVIEW)
    hits = [Hit(3, 4, 4, 0.1), Hit(5, 5, 5, 0.05)]
    texts = {t.source: t.text}
    sure, unsure, refused = (build("q", hits, t.passages, texts, {}, 3, v, 0.1) for v in VERDICTS)
    assert VERDICTS == ("answer", "unsure", "not in the interview")
    assert [a.verdict for a in (sure, unsure, refused)] == list(VERDICTS)
    assert [a.answered for a in (sure, unsure, refused)] == [True, False, False]
    assert len(unsure.quotes) == 2 and unsure.quotes == sure.quotes and unsure.closest is None
    assert refused.quotes == [] and refused.closest is not None
    assert unsure.to_dict()["verdict"] == "unsure" and refused.to_dict()["verdict"] == "not in the interview"
    assert Answer("q", True).verdict == "answer" and Answer("q", False).verdict == "not in the interview"
    with pytest.raises(ValueError):
        Answer("q", True, verdict="maybe")


def test_answer_object_shape(engine):
    d = engine.ask("Finland and Sweden joining", 2).to_dict()
    assert d["question"] == "Finland and Sweden joining" and isinstance(d["answered"], bool)
    for quote in d["quotes"]:
        keys = {"text", "source", "start", "end", "score", "speaker", "section", "asked", "role", "time"}
        assert keys <= set(quote)


@pytest.mark.parametrize("bad", ["", "   ", "\x00\x01", None, 5])
def test_bad_questions(bad):
    with pytest.raises(QuestionError):
        clean_question(bad)


def test_question_limits_and_cleaning():
    with pytest.raises(QuestionError) as e:
        clean_question("x" * 100_000)
    assert e.value.status == 413 and "2000" in str(e.value)
    assert clean_question("  NATO\x00 and\tIran\ud800 ") == "NATO and Iran"
    assert clean_question("Что думает НАТО? 🤔") == "Что думает НАТО? 🤔"


@pytest.mark.parametrize(
    "k, ok",
    [("3", 3), (1, 1), ("20", 20), ("0", None), ("-1", None), (10**9, None), ("abc", None), ("", None)],
)
def test_k_range(k, ok):
    if ok is None:
        with pytest.raises(QuestionError, match="1 to 20"):
            check_k(k)
    else:
        assert check_k(k) == ok


def test_filters(engine):
    assert all(q.speaker == "APA" for q in engine.ask("NATO", 3, speaker="APA").quotes)
    with pytest.raises(QuestionError, match="unknown speaker"):
        engine.ask("NATO", 3, speaker="Nobody")
    with pytest.raises(QuestionError, match="unknown source"):
        engine.ask("NATO", 3, source="nope.txt")
    assert engine.ask("NATO", 3, source="interview.txt").quotes
