"""Disliked answers from the chat, turned into test cases the ranking can be checked against.

The chat appends each verdict to a JSONL file with the question, its history and the quotes
shown. A disliked answer becomes a case: the same question should no longer get the same best
quote. (What the right quote is, the user did not say; adding it as gold makes it a full case.)
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from qa.engine import Engine, QuestionError


@dataclass
class Case:
    question: str
    history: list[str]
    disliked: tuple[str, int, int] | None  # source, start, end of the best quote shown


def disliked_cases(path: Path) -> list[Case]:
    cases, seen = [], set()
    for n, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError:
            raise ValueError(f"{path}:{n}: not JSON") from None
        if record.get("liked") is not False or not isinstance(record.get("question"), str):
            continue
        quotes = record.get("quotes") or []
        best = (quotes[0]["source"], quotes[0]["start"], quotes[0]["end"]) if quotes else None
        history = [h for h in record.get("history", []) if isinstance(h, str)]
        key = (record["question"], tuple(history), best)
        if key not in seen:
            seen.add(key)
            cases.append(Case(record["question"], history, best))
    return cases


def recheck(engine: Engine, cases: list[Case]) -> list[dict]:
    """For each disliked answer: is the best quote still the one the user disliked?"""
    out = []
    for case in cases:
        try:
            answer = engine.ask(case.question, 3, history=case.history)
        except QuestionError as e:
            out.append({"question": case.question, "error": str(e)})
            continue
        now = answer.quotes[0] if answer.quotes else None
        same = case.disliked == ((now.source, now.start, now.end) if now else None)
        out.append({"question": case.question, "still_disliked": same,
                    "now": now.text if now else None})  # fmt: skip
    return out
