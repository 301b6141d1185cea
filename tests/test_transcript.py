import pytest
from conftest import INTERVIEW, read_exact

from qa.transcript import (
    ANSWER,
    QUESTION,
    TITLE,
    TITLE_SPEAKER,
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
    assert len(t.turns) == 17 and len(t.passages) == 77
    assert [turn.role for turn in t.turns] == [TITLE] + [QUESTION, ANSWER] * 8
    assert {turn.speaker for turn in t.turns if turn.role == ANSWER} == {"Xavier Colomina"}
    assert {turn.speaker for turn in t.turns if turn.role == QUESTION} == {"APA"}
    sections = [turn.section for turn in t.turns[1::2]]
    assert sections[0] == "NATO-Azerbaijan cooperation has returned to the pre-pandemic level"
    assert len(set(sections)) == 7
    # The second exchange of a section keeps the section's headline.
    assert t.turns[5].section == t.turns[3].section


def test_the_title_line_is_a_quotable_passage():
    t = parse_file(INTERVIEW)
    title = t.passages[0]
    assert (title.role, title.speaker, title.turn) == (TITLE, TITLE_SPEAKER, 0)
    assert title.text == t.title and read_exact(INTERVIEW)[title.start : title.end] == t.title
    assert title.asked == "" and title.section == ""
    assert t.turns[0].passages == (0,) and t.turns[0].speaker == TITLE_SPEAKER
    # The turn after the title is the first question, which the title does not answer.
    assert t.passages[1].role == QUESTION and t.passages[3].asked.startswith("First of all")


def test_a_markdown_title_is_quoted_without_its_hash(write):
    t = parse_file(write("t.md", "# Talk with Ana\n\n- Why?\n- Because.\n"))
    assert [(p.text, p.role) for p in t.passages] == [
        ("Talk with Ana", TITLE),
        ("Why?", QUESTION),
        ("Because.", ANSWER),
    ]


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
    assert [p.text for p in t.passages] == [
        "Talk with Ana Lima, to Radio X",
        "Qué pasa?",
        "Dime.",
        "Todo bien.",
        "Ça va 😀 très bien.",
    ]
    for p in t.passages:
        assert raw[p.start : p.end] == p.text
    assert t.passages[0].role == TITLE and t.passages[1].section == "Über alles"


def test_name_colon_format(write):
    text = (
        "# The podcast\n\nJane Roe: Welcome. What brought you to Baku?\n"
        "Dr. Sam Oak: Work. I study drones.\nIt is a long story.\n"
        "Jane Roe: And now?\nDr. Sam Oak: Now I teach.\n"
    )
    path = write("pod.md", text)
    t = parse_file(path)
    assert [(x.speaker, x.role) for x in t.turns] == [
        (TITLE_SPEAKER, TITLE),
        ("Jane Roe", QUESTION),
        ("Dr. Sam Oak", ANSWER),
        ("Jane Roe", QUESTION),
        ("Dr. Sam Oak", ANSWER),
    ]
    answer = [p for p in t.passages if p.turn == 2]
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
    assert [x.speaker for x in t.turns] == [TITLE_SPEAKER] + ["The Daily", "Mary Major"] * 2
    assert [x.role for x in t.turns] == [TITLE] + [QUESTION, ANSWER] * 2
    assert [p.text for p in t.passages if p.turn == 2] == ["Because it matters.", "Mr. Smith agreed."]


@pytest.mark.parametrize(
    "content, message",
    [
        (b"", "empty"),
        (b"   \n\n  ", "empty"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00IHDR", "binary"),
        (b"caf\xe9 au lait\n- x\n- y", "UTF-8"),
        (b"Just some prose without any turns.\nAnother line.", "no interview turns"),
        (b"WEBVTT - Empty\n\n00:00:01.000 --> 00:00:02.000\n<v Ana></v>\n", "no cue text"),
    ],
)
def test_malformed_files_name_the_file(write, content, message):
    path = write("bad.txt", content)
    with pytest.raises(TranscriptError) as e:
        parse_file(path)
    assert str(path) in str(e.value) and message in str(e.value)


def test_a_file_of_only_questions_is_indexed_as_what_was_said(write):
    t = parse_file(write("q.txt", 'Title\n\n"Head"\n\n- Only a question?\n'))
    assert [(p.text, p.role) for p in t.passages] == [("Title", TITLE), ("Only a question?", ANSWER)]
    assert t.passages[1].section == "Head"


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


# --- roles read from the text ---------------------------------------------------------------


def roles(t):
    return [(x.speaker, x.role) for x in t.turns]


def test_vtt_interviewer_label_asks_though_the_interviewee_speaks_first(write):
    text = (
        "WEBVTT - Talk with Rosa Díaz\n\n"
        "00:00:01.000 --> 00:00:04.000\n<v Rosa Díaz>Thanks for having me. I brought the numbers.\n\n"
        "00:00:04.500 --> 00:00:07.000\n<v Interviewer>How was the harvest this year?\n\n"
        "00:00:07.500 --> 00:00:10.000\n<v Rosa Díaz>Poor. The frost came in April.\n\n"
        "00:00:10.500 --> 00:00:13.000\n<v Interviewer>And the prices?\n\n"
        "00:00:13.500 --> 00:00:16.000\n<v Rosa Díaz>They doubled.\n"
    )
    t = parse_file(write("rosa.vtt", text))
    assert roles(t) == [(TITLE_SPEAKER, TITLE)] + [("Rosa Díaz", ANSWER), ("Interviewer", QUESTION)] * 2 + [
        ("Rosa Díaz", ANSWER)
    ]
    poor = next(p for p in t.passages if p.text == "Poor.")
    assert poor.asked == "How was the harvest this year?" and poor.time == "00:00:07"
    assert next(p for p in t.passages if p.text == "They doubled.").asked == "And the prices?"
    assert t.passages[1].asked == ""  # nothing was asked before the first words


def test_a_one_speaker_srt_lecture_is_all_answers(write):
    text = (
        "1\n00:00:01,000 --> 00:00:04,000\nGood morning. Today we look at glaciers.\n\n"
        "2\n00:00:04,500 --> 00:00:08,000\nWhy do they move? Gravity pulls the ice downhill.\n\n"
        "3\n00:00:08,500 --> 00:00:12,000\nThe ice flows faster at the surface than at the bed.\n"
    )
    t = parse_file(write("lecture.srt", text))
    assert len(t.turns) == 1 and t.turns[0].role == ANSWER
    assert [p.role for p in t.passages] == [ANSWER] * 5
    assert {p.asked for p in t.passages} == {""}
    assert [p.text for p in t.passages][2:4] == ["Why do they move?", "Gravity pulls the ice downhill."]
    assert [p.time for p in t.passages] == ["00:00:01"] * 2 + ["00:00:04"] * 2 + ["00:00:08"]


def test_a_podcast_host_who_speaks_second_is_the_one_who_asks(write):
    text = (
        "Lena Berg: Hi, glad to be here.\n"
        "Tom Hale: Why did you move to Baku?\n"
        "Lena Berg: For the port project. Trade was growing fast.\n"
        "Tom Hale: What worries you most?\n"
        "Lena Berg: Drought. The sea level is falling.\n"
        "Tom Hale: Will you stay?\n"
        "Lena Berg: Yes, for a few more years.\n"
    )
    t = parse_file(write("pod.txt", text))
    assert roles(t) == [("Lena Berg", ANSWER), ("Tom Hale", QUESTION)] * 3 + [("Lena Berg", ANSWER)]
    drought = next(p for p in t.passages if p.text == "Drought.")
    assert drought.asked == "What worries you most?" and drought.speaker == "Lena Berg"


def test_a_panel_moderator_asks_and_both_guests_answer(write):
    text = (
        "Moderator: Welcome both. Ana, what does the new law change?\n"
        "Ana Ruiz: It caps rents in the city centre.\n"
        "Ben Okoro: And it sets up a register of landlords.\n"
        "Moderator: Ben, who pays for the register?\n"
        "Ben Okoro: The city does, from the tourist tax.\n"
        "Ana Ruiz: Landlords pay a small fee too.\n"
    )
    t = parse_file(write("panel.txt", text))
    assert roles(t) == [
        ("Moderator", QUESTION),
        ("Ana Ruiz", ANSWER),
        ("Ben Okoro", ANSWER),
        ("Moderator", QUESTION),
        ("Ben Okoro", ANSWER),
        ("Ana Ruiz", ANSWER),
    ]
    fee = next(p for p in t.passages if p.text == "Landlords pay a small fee too.")
    assert fee.asked == "Ben, who pays for the register?"


def test_a_scene_of_several_speakers_has_no_interviewer(write):
    text = (
        "Monica: Who left the milk out?\n"
        "Ross: Not me. I was at the museum all day.\n"
        "Chandler: Could this BE any warmer in here?\n"
        "Joey: I ate the sandwich. It was a great sandwich.\n"
        "Monica: Joey! That was for the party.\n"
        "Rachel: I bought more bread. It is on the counter.\n"
        "Ross: Did anyone see my keys?\n"
        "Chandler: They are in the fridge, next to the milk.\n"
    )
    t = parse_file(write("scene.txt", text))
    assert [x.speaker for x in t.turns] == ["Monica", "Ross", "Chandler", "Joey", "Monica", "Rachel", "Ross",
                                            "Chandler"]  # fmt: skip
    assert {x.role for x in t.turns} == {ANSWER}
    asked = {p.text: p.asked for p in t.passages}
    # With no interviewer, a line replies to the line before it when that one asks.
    assert asked["Not me."] == "Who left the milk out?"
    assert asked["I ate the sandwich."] == "Could this BE any warmer in here?"
    assert asked["Who left the milk out?"] == "" and asked["Joey!"] == ""
    assert asked["They are in the fridge, next to the milk."] == "Did anyone see my keys?"
