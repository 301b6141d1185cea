"""Ranked passages -> Answer: verbatim quotes with their citation, or a refusal."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

from qa.retrieve import Hit
from qa.transcript import Passage

MAX_QUOTE_CHARS = 400  # a quote grows by a neighbouring sentence only while it stays this short
SHORT_SENTENCE = 60  # a sentence this short is quoted with the one before it, for context
NEAR = 0.15  # a neighbour scoring within this of the best sentence joins the quote


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


@dataclass(frozen=True)
class Answer:
    question: str
    answered: bool
    quotes: list[Quote] = field(default_factory=list)
    confidence: float = 0.0
    closest: Quote | None = None  # when refused: the nearest passage, low confidence
    model: str = ""
    searched: str = ""  # the question as searched: with the one it follows, for a follow-up

    def to_dict(self) -> dict:
        return asdict(self)


def _quote(
    passages: Sequence[Passage],
    best: int,
    scores: dict[int, float],
    texts: dict[str, str],
    titles: dict[str, str],
    taken: set[int],
) -> tuple[Quote, set[int]]:
    p = passages[best]
    chosen = [best]
    neighbours = [i for i in (best - 1, best + 1) if 0 <= i < len(passages)]
    neighbours = [
        i for i in neighbours
        if passages[i].source == p.source and passages[i].turn == p.turn and i not in taken
    ]  # fmt: skip
    neighbours.sort(key=lambda i: scores.get(i, float("-inf")), reverse=True)
    top = scores[best]
    for i in neighbours:
        near = scores.get(i, float("-inf")) >= top - NEAR
        short = len(p.text) < SHORT_SENTENCE and i == best - 1
        a, b = min(chosen + [i]), max(chosen + [i])
        if (near or short) and passages[b].end - passages[a].start <= MAX_QUOTE_CHARS:
            chosen.append(i)
    start, end = passages[min(chosen)].start, passages[max(chosen)].end
    quote = Quote(
        text=texts[p.source][start:end],
        source=p.source,
        start=start,
        end=end,
        score=round(top, 4),
        speaker=p.speaker,
        section=p.section,
        asked=p.asked,
        title=titles.get(p.source, ""),
        highlight_start=p.start,
        highlight_end=p.end,
        time=p.time,
    )
    return quote, set(chosen)


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
    """The k best non-overlapping quotes, or, when not answered, only the closest one aside."""
    scores = {h.passage: h.score for h in hits}
    quotes: list[Quote] = []
    used: set[int] = set()
    for h in hits:
        if len(quotes) >= (k if answered else 1):
            break
        if h.passage in used:
            continue
        quote, covered = _quote(passages, h.passage, scores, texts, titles, used)
        used |= covered
        quotes.append(quote)
    if answered:
        return Answer(question, True, quotes, round(confidence, 4), None, model, searched or question)
    closest = quotes[0] if quotes else None
    return Answer(question, False, [], round(confidence, 4), closest, model, searched or question)
