import re
import struct
import time

import pytest
from conftest import INTERVIEW, read_exact

from qa.engine import find_transcripts
from qa.transcript import (
    ANSWER,
    MAX_SENTENCE_CHARS,
    QUESTION,
    TITLE,
    TITLE_SPEAKER,
    TranscriptError,
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
    found, passed = find_transcripts(tmp_path / "a")
    assert not passed
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


# --- long turns: time grows linearly with the text --------------------------------------------

SENTENCES = [
    "The hives on the north slope came through winter number {n} in good shape.",
    "We lost {n} colonies to mites in March, mostly the young ones.",
    "Mr. Okafor sold us forty frames of wax for {n} dollars.",
    "Why do bees swarm in May, year after year?",
    "Because the queen leaves with half the workers when hive {n} gets crowded.",
    "Dr. Lind counted {n} drones at the entrance before noon.",
    "It rained for nine days and the clover never opened!",
    "The honey from the lime trees is pale and sets within {n} days.",
    "I keep the smoker lit with dry pine needles and a little cardboard.",
    "Prices at the market rose by {n} percent since last autumn.",
    "Sometimes the wasps rob a weak hive in a single afternoon.",
    "We move the boxes at night, when every forager is home.",
]


def sentences(size: int, overhead: int) -> list[str]:
    """Varied sentences, each made unique by a counter, for a file of about `size` characters
    when each sentence takes `overhead` more."""
    out, total = [], 0
    while total < size:
        out.append(SENTENCES[len(out) % len(SENTENCES)].format(n=len(out)))
        total += len(out[-1]) + overhead
    return out


def one_speaker_srt(size: int) -> str:
    """An SRT file of one speaker, one sentence per cue."""
    cues = []
    for n, sentence in enumerate(sentences(size, 34), 1):
        clock = f"{n // 3600:02d}:{n // 60 % 60:02d}:{n % 60:02d}"
        cues.append(f"{n}\n{clock},000 --> {clock},900\n{sentence}\n\n")
    return "".join(cues)


def one_speaker_lines(size: int) -> str:
    """`Name: text` lines, every one said by the same speaker."""
    return "".join(f"Smith: {sentence}\n" for sentence in sentences(size, 8))


def seconds(run, *args) -> float:
    """The best of two runs: one slow run on a busy machine should not fail a test."""
    times = []
    for _ in range(2):
        start = time.perf_counter()
        run(*args)
        times.append(time.perf_counter() - start)
    return min(times)


def test_sentence_splitting_is_linear_past_skipped_abbreviations():
    text = "Mr. Smith " * 20_000  # 200 KB, every boundary skipped
    pieces = [text[a:b] for a, b in sentence_spans(text, 0, len(text))]  # one sentence, quoted in pieces
    assert " ".join(pieces) == text.strip() and max(map(len, pieces)) <= MAX_SENTENCE_CHARS
    small = seconds(sentence_spans, text, 0, len(text))
    large = seconds(sentence_spans, text * 2, 0, 2 * len(text))
    assert small < 2 and large < 5
    assert large <= 3 * small + 0.5


@pytest.mark.parametrize(
    "sentence", ["word " * 200_000, "x" * 5_000 + " tail", "a" * 401, "Hi there. " + "é " * 900]
)
def test_a_sentence_past_the_window_limit_is_cut_at_words_into_verbatim_pieces(sentence):
    text = "Bob: Go on?\nAnn: " + sentence + "\nBob: Thanks.\n"
    t = parse(text, "run-on.txt")
    spans = [(p.start, p.end) for p in t.passages if p.speaker == "Ann"]
    assert all(p.text == text[p.start : p.end] and 0 < len(p.text) <= MAX_SENTENCE_CHARS for p in t.passages)
    assert all(p.text == p.text.strip() for p in t.passages)
    assert all(b <= c for (_, b), (c, _) in zip(spans, spans[1:], strict=False))
    assert "".join(text[a:b] for a, b in spans).replace(" ", "") == sentence.replace(" ", "")  # all kept


@pytest.mark.parametrize("make", [one_speaker_srt, one_speaker_lines])
def test_one_long_turn_parses_in_linear_time(make):
    small, large = make(100_000), make(500_000)
    t = parse(large, "long.srt")
    assert {p.speaker for p in t.passages} <= {"Speaker", "Smith"} and {p.asked for p in t.passages} == {""}
    assert len(t.passages) > 5_000
    small_s, large_s = seconds(parse, small, "short.srt"), seconds(parse, large, "long.srt")
    assert large_s < 10 and large_s <= 8 * small_s + 0.5


@pytest.mark.parametrize(
    "text",
    [
        "Smith: It was " + "." * 200_000 + "x\nJones: Why?\n",  # a run of periods that ends no sentence
        "1\n00:00:01,000 --> 00:00:02,000\n" + "a<b " * 50_000 + "\n",  # "<" that opens no tag
        one_speaker_srt(200_000).replace("\n\n", "\n"),  # cues with no blank line between them
    ],
    ids=["periods", "unclosed-tags", "no-blank-lines"],
)
def test_pathological_text_parses_quickly(text):
    assert seconds(parse, text, "odd.srt") < 2


def test_cues_without_blank_lines_between_them_keep_their_own_text():
    text = (
        "1\n00:00:01,000 --> 00:00:02,000\nHello there.\n2\n00:00:03,000 --> 00:00:04,000\nGood bye.\n"
        "3\n00:00:05,000 --> 00:00:06,000\n42\n"
    )
    expected = [("Hello there.", "00:00:01"), ("Good bye.", "00:00:03"), ("42", "00:00:05")]
    assert [(p.text, p.time) for p in parse(text, "x.srt").passages] == expected
    vtt = "WEBVTT\n" + re.sub(r"^\d\n(?=\d)", "", text.replace(",", "."), flags=re.MULTILINE)
    assert [(p.text, p.time) for p in parse(vtt, "x.vtt").passages] == expected


def test_a_reply_to_a_long_turn_shares_its_question():
    long_question = "Who left the milk out? " + "It was cold in the morning. " * 2_000
    text = f"Ana: {long_question}\nBen: " + "Not me. " * 2_000 + "\nCid: I did.\nAna: Thanks.\n"
    t = parse(text, "scene.txt")
    replies = [p for p in t.passages if p.speaker == "Ben"]
    assert len(replies) == 2_000 and replies[0].asked == long_question.strip()
    assert len({id(p.asked) for p in replies} | {id(t.turns[1].asked)}) == 1  # one string, no copies


# --- byte-order marks, line endings, encodings ------------------------------------------------

HIVES = (
    "Smith: How many hives do you keep?\n"
    "Jones: I keep forty hives on the hill. Mr. Okafor keeps the rest.\n"
    "Smith: What do they feed on?\n"
    "Jones: Clover in June, then lime trees.\n"
    "Smith: Do you sell the honey?\n"
    "Jones: Yes, at the market on Saturdays.\n"
)


def shape(t):
    """Everything a parse says about its passages, offsets apart."""
    return [(p.text, p.speaker, p.role, p.asked, p.section, p.turn, p.time) for p in t.passages]


def test_a_byte_order_mark_changes_nothing(write):
    plain, marked = parse(HIVES, "h.txt"), parse_file(write("h.txt", "\ufeff" + HIVES))
    assert shape(marked) == shape(plain) and marked.title == plain.title
    assert roles(marked) == [("Smith", QUESTION), ("Jones", ANSWER)] * 3
    assert [p.start - 1 for p in marked.passages] == [p.start for p in plain.passages]
    for p in marked.passages:
        assert marked.text[p.start : p.end] == p.text


@pytest.mark.parametrize(
    "text",
    [
        "Q: Why now?\nA: Because it matters.\nQ: Anything else?\nA: No.\n",
        "# Bees and honey\n\n- Why bees?\n- Because they are kind.\n",
        "00:00:01,000 --> 00:00:02,000\nHello there.\n\n00:00:03,000 --> 00:00:04,000\nGood bye.\n",
        "WEBVTT - Bees\n\n00:00:01.000 --> 00:00:02.000\n<v Ana>Hello there.\n",
    ],
    ids=["q-a", "markdown", "srt", "vtt"],
)
def test_a_byte_order_mark_is_no_part_of_the_first_line(text):
    plain, marked = parse(text, "t.txt"), parse("\ufeff" + text, "t.txt")
    assert shape(marked) == shape(plain) and marked.title == plain.title
    assert "\ufeff" not in marked.title and marked.passages[0].text == plain.passages[0].text
    for p in marked.passages:
        assert marked.text[p.start : p.end] == p.text


SRT = (
    "1\n00:00:01,000 --> 00:00:04,000\nAna: Good morning. How are the bees?\n\n"
    "2\n00:00:04,500 --> 00:00:08,000\nBen: Busy. The lime trees opened early.\n  \n"
    "3\n00:00:08,500 --> 00:00:12,000\nAna: And the honey?\nIs it pale?\n\n"
    "4\n00:00:12,500 --> 00:00:15,000\nBen: Pale and sweet.\n"
)
VTT = (
    "WEBVTT - Bees\n\nNOTE made by hand\n\n"
    "00:00:01.000 --> 00:00:04.000 align:start\n<v Ana>Good morning. How are the bees?</v>\n\n"
    "00:00:04.500 --> 00:00:08.000\n<v Ben>Busy. The lime trees opened early.\n\n"
    "00:08.500 --> 00:12.000\n<v Ana>And the honey?\nIs it pale?\n\n"
    "00:00:12.500 --> 00:00:15.000\n<v Ben>Pale and sweet.\n"
)


def subtitle_shape(t):
    return [(p.text, p.speaker, p.role, p.time) for p in t.passages]


@pytest.mark.parametrize("text, name", [(SRT, "bees.srt"), (VTT, "bees.vtt")], ids=["srt", "vtt"])
@pytest.mark.parametrize("newline", ["\r\n", "\r", "mixed"])
def test_subtitles_read_any_line_ending(write, text, name, newline):
    expected = subtitle_shape(parse(text, name))
    speakers = [x[1] for x in expected if x[2] != TITLE]
    assert speakers == ["Ana"] * 2 + ["Ben"] * 2 + ["Ana"] * 2 + ["Ben"]
    if newline == "mixed":
        lines = text.split("\n")
        ending = ["\r\n", "\n", "\r"]  # never "\r" then "\n": that would be one "\r\n"
        converted = "".join(line + ending[i % 3] for i, line in enumerate(lines[:-1])) + lines[-1]
    else:
        converted = text.replace("\n", newline)
    path = write(name, converted)
    t = parse_file(path)
    assert subtitle_shape(t) == expected
    raw = read_exact(path)
    for p in t.passages:
        assert raw[p.start : p.end] == p.text
        assert "-->" not in p.text and not p.text.strip().isdigit()


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "utf-16-be"])
def test_utf16_is_named_as_such(write, encoding):
    path = write("h.txt", (HIVES + "Ana: Да, конечно. 蜂蜜はおいしい。\n").encode(encoding))
    with pytest.raises(TranscriptError) as e:
        parse_file(path)
    assert str(e.value) == f"{path}: UTF-16 text; save it as UTF-8"


@pytest.mark.parametrize(
    "content",
    [
        b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x01\x00\x00\x00\x01\x00\x08\x06\x00\x00\x00",
        bytes(range(256)) * 16,
        b"\x7fELF\x02\x01\x01" + b"\x00" * 9 + b"\x02\x00>\x00\x01\x00\x00\x00" + b"\x10\x00" * 40,
        struct.pack("<400H", *range(400)),
    ],
    ids=["png", "all-bytes", "elf", "shorts"],
)
def test_binary_files_are_still_named_binary(write, content):
    path = write("b.txt", content)
    with pytest.raises(TranscriptError, match="looks like a binary file"):
        parse_file(path)
