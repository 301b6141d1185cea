"""Ranked passages -> Answer: verbatim quotes with their citation, or a refusal.

An answer has one of three verdicts: "answer" (the quotes answer the question), "unsure" (the
closest quotes, which may not answer it) or "not in the interview" (a refusal: no quotes, the
nearest passage aside in `closest`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

from qa.retrieve import Hit
from qa.transcript import Passage


@dataclass(frozen=True)
class Quote:
    """Verbatim text of one turn: source_text[start:end] == text."""

    text: str
    source: str
    start: int
    end: int
    score: float
    speaker: str
    section: str
    asked: str
    title: str
    highlight_start: int  # the sentence that answers, inside [start, end)
    highlight_end: int
    time: str = ""  # cue start in a subtitle transcript
    role: str = "answer"  # "answer", "question" (the interviewer's words) or "title"


ANSWER, UNSURE, NOT_IN_INTERVIEW = "answer", "unsure", "not in the interview"
VERDICTS = (ANSWER, UNSURE, NOT_IN_INTERVIEW)


@dataclass(frozen=True)
class Answer:
    question: str
    answered: bool  # True only when verdict == "answer"
    quotes: list[Quote] = field(default_factory=list)
    confidence: float = 0.0
    closest: Quote | None = None  # when refused: the nearest passage, low confidence
    model: str = ""
    searched: str = ""  # the question as searched: with the one it follows, for a follow-up
    verdict: str = ""  # one of VERDICTS; left empty, it follows `answered`

    def __post_init__(self) -> None:
        verdict = self.verdict or (ANSWER if self.answered else NOT_IN_INTERVIEW)
        if verdict not in VERDICTS:
            raise ValueError(f"verdict {verdict!r} is not one of {VERDICTS}")
        object.__setattr__(self, "verdict", verdict)
        object.__setattr__(self, "answered", verdict == ANSWER)

    def to_dict(self) -> dict:
        return asdict(self)


def _quote(hit: Hit, passages: Sequence[Passage], texts: dict[str, str], titles: dict[str, str]) -> Quote:
    first, best = passages[hit.first], passages[hit.best]
    start, end = first.start, passages[hit.last].end
    return Quote(
        text=texts[first.source][start:end],
        source=first.source,
        start=start,
        end=end,
        score=round(hit.score, 4),
        speaker=first.speaker,
        section=first.section,
        asked=first.asked,
        title=titles.get(first.source, ""),
        highlight_start=best.start,
        highlight_end=best.end,
        time=first.time,
        role=first.role,
    )


def build(
    question: str,
    hits: Sequence[Hit],
    passages: Sequence[Passage],
    texts: dict[str, str],
    titles: dict[str, str],
    k: int,
    verdict: str | bool,
    confidence: float,
    model: str = "",
    searched: str = "",
) -> Answer:
    """The k best quotes that share no sentence; when unsure, the same quotes as possibly not
    answering; when not in the interview, only the closest one, aside. `verdict` True or False
    stands for "answer" or "not in the interview"."""
    if isinstance(verdict, bool):
        verdict = ANSWER if verdict else NOT_IN_INTERVIEW
    quotes: list[Quote] = []
    used: set[int] = set()
    for h in hits:
        if len(quotes) >= (1 if verdict == NOT_IN_INTERVIEW else k):
            break
        if used.intersection(h.rows()):
            continue
        used.update(h.rows())
        quotes.append(_quote(h, passages, texts, titles))
    searched = searched or question
    if verdict != NOT_IN_INTERVIEW:
        return Answer(
            question, verdict == ANSWER, quotes, round(confidence, 4), None, model, searched, verdict
        )
    closest = quotes[0] if quotes else None
    return Answer(question, False, [], round(confidence, 4), closest, model, searched, verdict)
