import pytest
from conftest import INTERVIEW, read_exact

from qa.transcript import (
    ANSWER,
    QUESTION,
    TranscriptError,
    find_transcripts,
    parse,
    parse_file,
    sentence_spans,
    speakers_from_title,
)


def test_interview_turns_speakers_and_sections():
    t = parse_file(INTERVIEW)
    assert t.title.startswith("Interview of the special representative")
    assert len(t.turns) == 16
    assert [turn.role for turn in t.turns] == [QUESTION, ANSWER] * 8
    assert {turn.speaker for turn in t.turns if turn.role == ANSWER} == {"Xavier Colomina"}
    assert {turn.speaker for turn in t.turns if turn.role == QUESTION} == {"APA"}
    sections = [turn.section for turn in t.turns[::2]]
    assert sections[0] == "NATO-Azerbaijan cooperation has returned to the pre-pandemic level"
    assert len(set(sections)) == 7
    # The second exchange of a section keeps the section's headline.
    assert t.turns[4].section == t.turns[2].section


def test_every_span_is_verbatim_in_the_file():
    t = parse_file(INTERVIEW)
    raw = read_exact(INTERVIEW)
    assert t.text == raw
    for p in t.passages:
        assert raw[p.start : p.end] == p.text
        assert p.text == p.text.strip() and not p.text.startswith("- ")
    for turn in t.turns:
        assert raw[turn.start : turn.end].startswith(t.passages[turn.passages[0]].text)


def test_answers_carry_the_question_and_continuation_lines():
    t = parse_file(INTERVIEW)
    p = next(p for p in t.passages if p.text.startswith("We maintain a close partnership"))
    assert p.role == ANSWER and p.speaker == "Xavier Colomina"
    assert p.asked.startswith("First of all, I would like to ask about the relations")
    assert p.asked.endswith("between Azerbaijan and the alliance?")
    # A multi-paragraph question is one turn.
    q = next(
        p for p in t.passages if p.text == "How can the Alliance contribute to accelerating the process?"
    )
    assert q.role == QUESTION and q.asked == ""
    two = [p.text for p in t.passages if "August 2021" in p.text or "gratitude" in p.text]
    assert len(two) == 2  # one line holding two sentences gives two passages


def test_crlf_and_unicode_offsets(write):
    text = (
        "Talk with Ana Lima, to Radio X\r\n\r\n\u201cÜber alles\u201d\r\n\r\n"
        "- Qué pasa? Dime.\r\n\r\n- Todo bien. Ça va 😀 très bien.\r\n"
    )
    path = write("t.txt", text)
    t = parse_file(path)
    raw = read_exact(path)
    assert [p.text for p in t.passages] == ["Qué pasa?", "Dime.", "Todo bien.", "Ça va 😀 très bien."]
    for p in t.passages:
        assert raw[p.start : p.end] == p.text
    assert t.passages[0].section == "Über alles"


def test_name_colon_format(write):
    text = (
        "# The podcast\n\nJane Roe: Welcome. What brought you to Baku?\n"
        "Dr. Sam Oak: Work. I study drones.\nIt is a long story.\n"
        "Jane Roe: And now?\nDr. Sam Oak: Now I teach.\n"
    )
    path = write("pod.md", text)
    t = parse_file(path)
    assert [(x.speaker, x.role) for x in t.turns] == [
        ("Jane Roe", QUESTION),
        ("Dr. Sam Oak", ANSWER),
        ("Jane Roe", QUESTION),
        ("Dr. Sam Oak", ANSWER),
    ]
    answer = [p for p in t.passages if p.turn == 1]
    assert [p.text for p in answer] == ["Work.", "I study drones.", "It is a long story."]
    assert answer[0].asked == "Welcome. What brought you to Baku?"
    assert t.title == "The podcast" and answer[0].section == ""
    for p in t.passages:
        assert text[p.start : p.end] == p.text


def test_q_a_format(write):
    text = (
        "Interview with Mary Major, by The Daily\n\nQ: Why now?\n"
        "A: Because it matters. Mr. Smith agreed.\nQ: Anything else?\nA: No.\n"
    )
    t = parse_file(write("qa.txt", text))
    assert [x.speaker for x in t.turns] == ["The Daily", "Mary Major"] * 2
    assert [p.text for p in t.passages if p.turn == 1] == ["Because it matters.", "Mr. Smith agreed."]


@pytest.mark.parametrize(
    "content, message",
    [
        (b"", "empty"),
        (b"   \n\n  ", "empty"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00IHDR", "binary"),
        (b"caf\xe9 au lait\n- x\n- y", "UTF-8"),
        (b"Just some prose without any turns.\nAnother line.", "no interview turns"),
        (b'Title\n\n"Head"\n\n- Only a question?\n', "no answers"),
    ],
)
def test_malformed_files_name_the_file(write, content, message):
    path = write("bad.txt", content)
    with pytest.raises(TranscriptError) as e:
        parse_file(path)
    assert str(path) in str(e.value) and message in str(e.value)


def test_unreadable_and_missing(tmp_path):
    with pytest.raises(TranscriptError, match="cannot read"):
        parse_file(tmp_path / "nope.txt")
    with pytest.raises(TranscriptError, match="no such file"):
        find_transcripts(tmp_path / "nope")


def test_find_transcripts_in_folder(write, tmp_path):
    write("a/one.txt", "- q?\n- a.")
    write("a/b/two.md", "- q?\n- a.")
    write("a/skip.pdf", "x")
    write("a/.hidden.txt", "x")
    found = find_transcripts(tmp_path / "a")
    assert [p.relative_to(tmp_path / "a").as_posix() for p in found] == ["b/two.md", "one.txt"]


def test_sentence_splitting_keeps_abbreviations():
    text = "Mr. Smith met Dr. Jones at 5 p.m. in the U.S. capital. Then he left! Did he? Yes."
    spans = sentence_spans(text, 0, len(text))
    assert [text[a:b] for a, b in spans][-3:] == ["Then he left!", "Did he?", "Yes."]
    assert text[spans[0][0] : spans[0][1]].startswith("Mr. Smith met Dr. Jones")


def test_speakers_from_title():
    assert speakers_from_title("Interview of the envoy, Xavier Colomina, to APA") == (
        "APA",
        "Xavier Colomina",
    )
    assert speakers_from_title("BBC interviews Jane Doe") == ("BBC", "Jane Doe")
    assert speakers_from_title("Meeting notes") == ("Interviewer", "Interviewee")


def test_passages_carry_their_source():
    t = parse("- Q?\n- A.", "some/where.txt")
    assert {p.source for p in t.passages} == {"some/where.txt"}
    assert t.title == "where"
