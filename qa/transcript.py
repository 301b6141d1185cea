"""Transcript text -> turns and sentence passages, each with its character span in the file.

Four layouts are read:
- dash turns: a title line, quoted section headlines, turns starting with "- " that alternate
  question/answer inside a section, other lines continuing the turn above (the APA interview);
- `Name: text` lines, a new turn at each speaker label;
- `Q:` / `A:` lines;
- WebVTT and SRT subtitles: the speaker from a `<v Name>` voice tag or a `Name:` prefix, each
  sentence keeping the start time of its cue.
Offsets index the file's text decoded as UTF-8 with no newline translation, so that
`text[start:end]` of the file read with `open(path, encoding="utf-8", newline="")` is the passage.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

QUESTION, ANSWER, TITLE = "question", "answer", "title"
TITLE_SPEAKER = "Title"  # who "says" the title line: it is quotable, and searched like any line
SUFFIXES = (".txt", ".md", ".vtt", ".srt")


class TranscriptError(ValueError):
    """A file that cannot be read as a transcript; the message names the file."""


@dataclass(frozen=True)
class Passage:
    """One sentence of one turn: the unit that is embedded, ranked and quoted."""

    source: str
    start: int
    end: int
    text: str
    speaker: str
    section: str
    asked: str
    turn: int
    role: str
    time: str = ""  # start of the subtitle cue, "HH:MM:SS"; empty for plain text


@dataclass(frozen=True)
class Turn:
    source: str
    start: int
    end: int
    speaker: str
    role: str
    section: str
    asked: str
    passages: tuple[int, ...]  # positions in Transcript.passages


@dataclass(frozen=True)
class Transcript:
    source: str
    title: str
    text: str
    turns: tuple[Turn, ...]
    passages: tuple[Passage, ...] = field(repr=False)

    @property
    def speakers(self) -> list[str]:
        """Who speaks: the title line is not a speaker."""
        return sorted({t.speaker for t in self.turns if t.role != TITLE})


def read_text(path: Path, name: str | None = None) -> str:
    """The file's text exactly as offsets count it, or a TranscriptError naming the file (as
    `name`, when given: a file name may not be printable as it is)."""
    path, shown = Path(path), name or str(path)
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise TranscriptError(f"{shown}: cannot read transcript ({e.strerror or e})") from None
    return decode(raw, shown)


def decode(raw: bytes, name: str) -> str:
    """A file's bytes as the text offsets count, or a TranscriptError naming it as `name`: the
    one rule for files in the data folder and files uploaded from the page."""
    if not raw.strip():
        raise TranscriptError(f"{name}: transcript is empty")
    if _utf16(raw):
        raise TranscriptError(f"{name}: UTF-16 text; save it as UTF-8")
    if b"\x00" in raw:
        raise TranscriptError(f"{name}: looks like a binary file, not a text transcript")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise TranscriptError(
            f"{name}: not UTF-8 text (bad byte at offset {e.start}); save it as UTF-8"
        ) from None


_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ufffd]")


def _utf16(raw: bytes) -> bool:
    """Text saved as UTF-16 (Windows Notepad's "Unicode"), which would otherwise pass for a binary.

    Without a byte-order mark, its NULs sit in every other byte (the high byte of the spaces,
    colons and line ends any transcript has) and it decodes to no control characters; binaries
    have NULs anywhere and decode to controls."""
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        return True
    head = raw[:4096]
    even, odd = head[0::2].count(0), head[1::2].count(0)
    if max(even, odd) < 4 or min(even, odd) > max(even, odd) // 10:
        return False
    chars = head[: len(head) // 2 * 2].decode("utf-16-le" if odd > even else "utf-16-be", errors="replace")
    return not _CONTROL.search(chars[:-1])  # the last unit may be half of a cut surrogate pair


def parse_file(path: Path, source: str | None = None) -> Transcript:
    return parse(read_text(path), source or str(path))


# --- lines ---------------------------------------------------------------------------------


@dataclass
class _Line:
    start: int  # offset of the first non-blank character
    end: int  # offset after the last non-blank character
    text: str


_LINE = re.compile(r"[^\r\n]+")


def _lines(text: str) -> list[_Line]:
    out = []
    # A byte-order mark is how the file was saved, not text, and str.strip() keeps it.
    for m in _LINE.finditer(text, 1 if text.startswith("\ufeff") else 0):
        s = m.group()
        stripped = s.strip()
        if not stripped:
            continue
        lead = len(s) - len(s.lstrip())
        out.append(_Line(m.start() + lead, m.start() + lead + len(stripped), stripped))
    return out


_HEADLINE = re.compile(r'^(?:#{1,6}\s+(?P<md>.+)|(?P<q>["“«].+["”»]))$')
_DASH = re.compile(r"^[-–—]\s+")
_QA = re.compile(r"^(?P<label>Q|A|Question|Answer)\s*[:.]\s*", re.IGNORECASE)
_LABEL = re.compile(r"^(?P<label>(?:\*\*)?[A-Z][\w.'’\-]*(?:\s+[A-Z0-9][\w.'’\-]*){0,3}(?:\*\*)?)\s*:\s+")
_TIMESTAMP = re.compile(r"^\[?\(?\d{1,2}:\d{2}(?::\d{2})?\)?\]?\s*")
_INTERVIEWER_NAMES = {"q", "question", "interviewer", "host", "moderator"}


def _h1(line: _Line) -> str:
    """A Markdown level-one heading names the document, not a section."""
    return line.text[2:].strip() if line.text.startswith("# ") else ""


def _headline(line: _Line) -> str | None:
    m = _HEADLINE.match(line.text)
    if not m:
        return None
    if m.group("md"):
        return m.group("md").strip()
    inner = line.text[1:-1].strip()
    # A quoted line with quotes inside it is a quote in a turn, not a headline.
    return inner if inner and not re.search(r'["“”«»]', inner) else None


# --- title -> speaker names ----------------------------------------------------------------

_TITLE_PATTERNS = [
    re.compile(
        r"\binterview\s+(?:of|with|given by)\s+(?P<who>.+?)\s+(?:to|for|by)\s+(?P<by>[^,]+?)\s*$",
        re.IGNORECASE,
    ),
    re.compile(r"^(?P<by>[^,]+?)\s+interviews?\s+(?P<who>.+?)\s*$", re.IGNORECASE),
    re.compile(r"^(?P<who>.+?),?\s+interviewed\s+by\s+(?P<by>[^,]+?)\s*$", re.IGNORECASE),
    re.compile(r"\binterview\s+(?:of|with)\s+(?P<who>.+?)\s*$", re.IGNORECASE),
]


def _name(fragment: str) -> str:
    """The proper name in a title fragment: its last comma-separated part, if it is capitalized."""
    part = fragment.strip(" ,.:;\"'").split(",")[-1].strip()
    part = re.sub(r"^(?:the|a|an)\s+", "", part)
    if part and part[0].isupper() and len(part) <= 60 and len(part.split()) <= 5:
        return part
    return ""


def speakers_from_title(title: str) -> tuple[str, str]:
    """(interviewer, interviewee) named by a title like "Interview of X, Name, to Outlet"."""
    for pattern in _TITLE_PATTERNS:
        m = pattern.search(title)
        if m:
            by = _name(m.groupdict().get("by") or "")
            who = _name(m.group("who"))
            return by or "Interviewer", who or "Interviewee"
    return "Interviewer", "Interviewee"


# --- turns ---------------------------------------------------------------------------------


@dataclass
class _RawTurn:
    speaker: str
    role: str
    section: str
    paragraphs: list[tuple[int, int]]  # spans of the turn's text, label excluded
    times: list[str] = field(default_factory=list)  # cue start per paragraph, for subtitles


def parse(text: str, source: str) -> Transcript:
    """Parse transcript text; raises TranscriptError when no turns can be recognized."""
    lines = _lines(text)
    if not lines:
        raise TranscriptError(f"{source}: transcript is empty")
    if _CUE_TIME.search(text):
        title, raw = _subtitle_turns(text)
        if not any(t.role != TITLE for t in raw):
            raise TranscriptError(f"{source}: subtitle file with no cue text")
        assign_roles(raw, text)
        return _build(text, source, title, raw)
    dash = sum(1 for ln in lines if _DASH.match(ln.text))
    qa = sum(1 for ln in lines if _QA.match(ln.text))
    labelled = sum(1 for ln in lines if _LABEL.match(ln.text))
    if dash >= 1 and dash >= qa and dash >= labelled:
        title, raw = _dash_turns(lines)
    elif qa >= 1 and qa >= labelled:
        title, raw = _labelled_turns(lines, qa_labels=True)
    elif labelled >= 2:
        title, raw = _labelled_turns(lines, qa_labels=False)
        assign_roles(raw, text)
    else:
        raise TranscriptError(
            f"{source}: no interview turns found; expected lines starting with '- ', 'Name: ' or 'Q:'/'A:'"
        )
    if not any(t.role == ANSWER for t in raw):  # only questions: quote them as what was said
        for t in raw:
            t.role = ANSWER if t.role == QUESTION else t.role
    return _build(text, source, title, raw)


def _title_turn(line: _Line) -> _RawTurn:
    """The title line as a turn of its own: what the transcript is, who speaks, for whom."""
    skip = len(line.text) - len(_h1(line)) if _h1(line) else 0
    return _RawTurn(TITLE_SPEAKER, TITLE, "", [(line.start + skip, line.end)])


def _dash_turns(lines: list[_Line]) -> tuple[str, list[_RawTurn]]:
    title, raw = "", []
    first = lines[0]
    if _h1(first) or (not _DASH.match(first.text) and _headline(first) is None):
        title, lines, raw = _h1(first) or first.text, lines[1:], [_title_turn(first)]
    interviewer, interviewee = speakers_from_title(title)
    section, in_section = "", 0
    for ln in lines:
        head = _headline(ln)
        m = _DASH.match(ln.text)
        if head is not None and not m:
            section, in_section = head, 0
        elif m:
            role = QUESTION if in_section % 2 == 0 else ANSWER
            speaker = interviewer if role == QUESTION else interviewee
            raw.append(_RawTurn(speaker, role, section, [(ln.start + m.end(), ln.end)]))
            in_section += 1
        elif raw and raw[-1].section == section and raw[-1].role != TITLE:
            raw[-1].paragraphs.append((ln.start, ln.end))
        # Text before the first turn of the file is preamble: not a turn, not quoted.
    return title, raw


def _labelled_turns(lines: list[_Line], qa_labels: bool) -> tuple[str, list[_RawTurn]]:
    pattern = _QA if qa_labels else _LABEL
    title, section, raw = "", "", []
    first_label = next(i for i, ln in enumerate(lines) if pattern.match(ln.text))
    if first_label > 0 and (_h1(lines[0]) or _headline(lines[0]) is None):
        title = _h1(lines[0]) or lines[0].text
    elif first_label == 0 and not qa_labels:
        # "Show name: episode title" on the first line is a title when that label never speaks again.
        labels = [m.group("label") for ln in lines if (m := pattern.match(ln.text))]
        if labels.count(labels[0]) == 1 and len(labels) >= 3:
            title = lines[0].text
    if title:
        raw.append(_title_turn(lines[0]))
    interviewer_name, interviewee_name = speakers_from_title(title)
    for ln in lines[1 if title else 0 :]:
        body = _TIMESTAMP.sub("", ln.text, count=1)
        offset = ln.start + (len(ln.text) - len(body))
        head = _headline(ln)
        m = pattern.match(body)
        if head is not None and not m:
            section = head
        elif m:
            label = m.group("label").strip("*")
            if qa_labels:
                asks = label[0].lower() == "q"
                speaker = interviewer_name if asks else interviewee_name
            else:
                asks, speaker = False, label
            raw.append(_RawTurn(speaker, QUESTION if asks else ANSWER, section, [(offset + m.end(), ln.end)]))
        elif raw and raw[-1].role != TITLE:
            raw[-1].paragraphs.append((ln.start, ln.end))
    raw = [t for t in raw if any(e > s for s, e in t.paragraphs)]
    return title, raw


# --- roles ---------------------------------------------------------------------------------

_INTERROGATIVE = re.compile(
    r"^(?:who|whom|whose|what|when|where|why|how|which|is|are|was|were|do|does|did|can|could|will|"
    r"would|should|has|have|had|may|might|shall|tell us|tell me|let me ask|i would like to ask|"
    r"i'd like to ask)\b",
    re.IGNORECASE,
)
ASKER_SHARE = 0.6  # an asker: at least this share of their turns are questions,
ASKER_TURNS = 0.2  # askers together speak at least this share of the turns,
OTHERS_SHARE = 0.3  # and the others ask less than this share of theirs


def _asks(text: str) -> bool:
    """A turn that asks: it ends a sentence with "?" or opens like a question."""
    return "?" in text or bool(_INTERROGATIVE.match(text.lstrip("-–—\"“'( ")))


def assign_roles(turns: list[_RawTurn], text: str) -> None:
    """The interviewer is whoever asks, read from the text, never whoever speaks first.

    A label such as Interviewer, Host, Q or Moderator names the asker. Without one, askers are
    speakers most of whose turns are questions, who speak a good share of the turns, while the
    others mostly do not ask. One speaker, or nobody who mostly asks (a lecture, a drama), means
    every turn is an answer."""
    spoken = [t for t in turns if t.role != TITLE]
    names = {t.speaker for t in spoken}
    askers = {n for n in names if n.lower().strip(" .") in _INTERVIEWER_NAMES}
    if not askers and len(names) > 1:
        asks: dict[str, list[bool]] = {}
        for t in spoken:
            asks.setdefault(t.speaker, []).append(_asks(" ".join(text[a:b] for a, b in t.paragraphs)))
        askers = {n for n, v in asks.items() if sum(v) >= ASKER_SHARE * len(v)}
        theirs = [x for n in askers for x in asks[n]]
        others = [x for n, v in asks.items() if n not in askers for x in v]
        if len(theirs) < ASKER_TURNS * len(spoken) or not others or sum(others) >= OTHERS_SHARE * len(others):
            askers = set()
    for t in spoken:
        t.role = QUESTION if t.speaker in askers and len(askers) < len(names) else ANSWER


# --- subtitles -----------------------------------------------------------------------------

# Subtitles come with "\n", "\r\n" or old Mac "\r" line endings: no "^", "$" or bare "\n" here.
_CUE_TIME = re.compile(
    r"(?:\A\ufeff?|(?<=[\r\n]))[ \t]*"  # at a line start, after a byte-order mark on the first
    r"(?P<start>(?:\d{1,2}:)?\d{1,2}:\d{2}[.,]\d{1,3})[ \t]+-->[ \t]+\S[^\r\n]*"
)
_NEWLINE = r"(?:\r\n|\r(?!\n)|\n)"  # "\r\n" is one line ending, never "\r" then "\n"
_BLANK_LINE = re.compile(rf"{_NEWLINE}[ \t]*{_NEWLINE}|\Z")
_VOICE = re.compile(r"^<v(?:\.[\w.-]+)?\s+(?P<name>[^>]+)>")
_TAG = re.compile(r"</?[a-z][^<>]*>", re.IGNORECASE)  # no "<" inside, so a stray "<" is read once


def _clock(stamp: str) -> str:
    parts = re.split(r"[:.,]", stamp)[:-1]
    while len(parts) < 3:
        parts.insert(0, "0")
    return ":".join(f"{int(x):02d}" for x in parts)


def _subtitle_turns(text: str) -> tuple[str, list[_RawTurn]]:
    """Cues -> turns: consecutive cues of one speaker form a turn, each cue a paragraph."""
    raw: list[_RawTurn] = []
    speaker = "Speaker"
    cues = list(_CUE_TIME.finditer(text))
    for cue, limit in zip(cues, [c.start() for c in cues[1:]] + [len(text)], strict=True):
        time = _clock(cue.group("start"))
        # A cue's text ends at a blank line, or at the next cue when no blank line comes first.
        body_start = cue.end()
        block_end = _BLANK_LINE.search(text, body_start, limit).start()
        lines = _lines(text[body_start:block_end])
        if block_end == limit < len(text) and lines and lines[-1].text.isdigit():
            lines.pop()  # the next SRT cue's number
        for ln in lines:
            a, b = body_start + ln.start, body_start + ln.end
            line = text[a:b]
            voice = _VOICE.match(line)
            label = None if voice else _LABEL.match(line)
            if voice or label:
                speaker = (voice or label).group("name" if voice else "label").strip().strip("*")
                a += (voice or label).end()
            close = line.rfind("</v>")
            if close >= 0 and a <= body_start + ln.start + close:
                b = body_start + ln.start + close
            if not _TAG.sub("", text[a:b]).strip():
                continue
            if raw and raw[-1].speaker == speaker:
                raw[-1].paragraphs.append((a, b))
                raw[-1].times.append(time)
            else:
                raw.append(_RawTurn(speaker, ANSWER, "", [(a, b)], [time]))
    title = ""
    header = re.match(r"\ufeff?WEBVTT[ \t]*(?:-[ \t]*)?(?P<title>[^\r\n]*)", text)
    if header and header.group("title").strip():
        title = header.group("title").strip()
        a = header.start("title")
        raw.insert(0, _RawTurn(TITLE_SPEAKER, TITLE, "", [(a, a + len(title))], [""]))
    return title, raw


# --- sentences -----------------------------------------------------------------------------

_ABBREV = {
    "mr", "mrs", "ms", "dr", "prof", "gen", "col", "lt", "sgt", "st", "sr", "jr", "vs", "etc",
    "e.g", "i.e", "no", "u.s", "u.k", "u.n", "e.u", "jan", "feb", "mar", "apr", "jun", "jul",
    "aug", "sep", "sept", "oct", "nov", "dec", "approx", "fig",
}  # fmt: skip
# A match starts only at the first mark of a run and gives nothing back, so a long run of marks
# that ends no sentence is read once, not once per mark.
_BOUNDARY = re.compile(r"(?<![.!?…])[.!?…]++[\"”’')\]]*+\s++(?=[\"“‘(\[]?[A-Z0-9À-ÖØ-ÞА-ЯƏÜÖĞÇŞİ])")
_WORD_BEFORE = re.compile(r"([\w.]+)[.!?…]*$")
WORD_TAIL = 64  # how far back the word before a mark is looked for: longer words are no abbreviation


def sentence_spans(text: str, start: int, end: int) -> list[tuple[int, int]]:
    """Split text[start:end] into sentence spans, trimmed of surrounding whitespace."""
    spans, s = [], start
    for m in _BOUNDARY.finditer(text, start, end):
        # A bounded tail: the text since the last cut grows while abbreviations are skipped.
        word = _WORD_BEFORE.search(text, max(s, m.start() + 1 - WORD_TAIL), m.start() + 1)
        if word and word.group(1).lower().rstrip(".") in _ABBREV:
            continue
        cut = m.start() + len(m.group().rstrip())
        spans.append((s, cut))
        s = m.end()
    spans.append((s, end))
    out = []
    for a, b in spans:
        seg = text[a:b]
        a2 = a + len(seg) - len(seg.lstrip())
        b2 = b - (len(seg) - len(seg.rstrip()))
        if b2 > a2 and re.search(r"\w", text[a2:b2]):
            out += _pieces(text, a2, b2)
    return out


MAX_SENTENCE_CHARS = 400  # a longer sentence is quoted in pieces of at most this many characters
_SPACES = (" ", "\n", "\t", "\r", "\u00a0")
_SPACE_RUN = re.compile(r"\s*")


def _pieces(text: str, start: int, end: int) -> list[tuple[int, int]]:
    """A sentence longer than MAX_SENTENCE_CHARS cut at word boundaries into pieces no longer
    than that, each a verbatim span: a quote is a window of sentences, and one run-on sentence
    (a transcript without punctuation) must not make a quote of a whole file. A "word" longer
    than the limit is cut where the limit falls."""
    out = []
    while end - start > MAX_SENTENCE_CHARS:
        cut = max(text.rfind(c, start + 1, start + MAX_SENTENCE_CHARS + 1) for c in _SPACES)
        cut = cut if cut > start else start + MAX_SENTENCE_CHARS
        piece = text[start:cut].rstrip()
        if re.search(r"\w", piece):
            out.append((start, start + len(piece)))
        start = _SPACE_RUN.match(text, cut, end).end()
    if end > start and re.search(r"\w", text[start:end]):
        out.append((start, end))
    return out


def _build(text: str, source: str, title: str, raw: list[_RawTurn]) -> Transcript:
    turns: list[Turn] = []
    passages: list[Passage] = []
    last_question, previous, previous_text = "", None, ""
    interviewed = any(t.role == QUESTION for t in raw)
    for raw_turn in raw:
        role = raw_turn.role
        times = raw_turn.times or [""] * len(raw_turn.paragraphs)
        timed = [
            (span, t) for (a, b), t in zip(raw_turn.paragraphs, times, strict=True)
            for span in sentence_spans(text, a, b)
        ]  # fmt: skip
        spans = [span for span, _ in timed]
        if not spans:
            continue
        turn_text = " ".join(text[a:b] for a, b in raw_turn.paragraphs)
        if role == QUESTION:
            last_question = turn_text
        elif role == ANSWER and not interviewed:
            # No interviewer: a turn replies to the line before it when that line asks.
            asks = previous and previous.speaker != raw_turn.speaker and previous.role == ANSWER
            last_question = previous_text if asks and _asks(previous_text) else ""
        asked = last_question if role == ANSWER else ""
        previous, previous_text = raw_turn, turn_text
        first = len(passages)
        for (a, b), time in timed:
            passages.append(
                Passage(source, a, b, text[a:b], raw_turn.speaker, raw_turn.section, asked,
                        len(turns), role, time)
            )  # fmt: skip
        turns.append(
            Turn(source, spans[0][0], spans[-1][1], raw_turn.speaker, role, raw_turn.section,
                 asked, tuple(range(first, len(passages))))
        )  # fmt: skip
    if not title:
        title = Path(source).stem.replace("_", " ").replace("-", " ")
    return Transcript(source, title, text, tuple(turns), tuple(passages))
