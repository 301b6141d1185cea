"""Ranked passages -> Answer: verbatim quotes with their citation, or a refusal."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

from qa.retrieve import Hit
from qa.transcript import Passage

VERDICTS = ("answer", "unsure", "not in the interview")


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


@dataclass(frozen=True)
class Answer:
    question: str
    answered: bool
    quotes: list[Quote] = field(default_factory=list)
    confidence: float = 0.0
    closest: Quote | None = None  # when refused: the nearest passage, low confidence
    model: str = ""
    searched: str = ""  # the question as searched: with the one it follows, for a follow-up
    verdict: str = ""  # one of VERDICTS; "unsure" keeps its closest passages in `quotes`

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
    answered: bool,
    confidence: float,
    model: str = "",
    searched: str = "",
) -> Answer:
    """The k best quotes that share no sentence, or, when not answered, only the closest one aside."""
    quotes: list[Quote] = []
    used: set[int] = set()
    for h in hits:
        if len(quotes) >= (k if answered else 1):
            break
        if used.intersection(h.rows()):
            continue
        used.update(h.rows())
        quotes.append(_quote(h, passages, texts, titles))
    if answered:
        return Answer(question, True, quotes, round(confidence, 4), None, model, searched or question,
                      VERDICTS[0])  # fmt: skip
    closest = quotes[0] if quotes else None
    return Answer(question, False, [], round(confidence, 4), closest, model, searched or question,
                  VERDICTS[2])  # fmt: skip
