"""Disliked answers from the chat, turned into test cases the ranking can be checked against.

The chat appends each verdict to a JSONL file with the question, its history and the quotes
shown. A disliked answer becomes a case: the same question should no longer get the same best
quote. (What the right quote is, the user did not say; adding it as gold makes it a full case.)
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from qa.answer import Answer
from qa.engine import Engine, QuestionError, question_error

MAX_RECORD_BYTES = 64_000  # one verdict with its question, history and quotes
MAX_FILE_BYTES = 20_000_000  # the file stops growing here (about 10,000 verdicts)
VERDICTS = {True: True, False: False, "Like": True, "Dislike": False, "": None, None: None}


def verdict(liked: object) -> bool | None:
    """A like (True), a dislike (False) or a withdrawn one (None); anything else is not a
    verdict and raises ValueError: the chat's like event can be called by any client."""
    try:
        return VERDICTS[liked]  # type: ignore[index]
    except (KeyError, TypeError):
        raise ValueError(f"not a verdict: {str(liked)[:40]!r}") from None


def record(answer: Answer, liked: bool | None, history: list[str]) -> dict:
    """One line of the feedback file: the verdict with the question, its history and quotes."""
    return {"time": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "liked": liked, "history": history,
            **answer.to_dict()}  # fmt: skip


class FeedbackLog:
    """The append-only JSONL file of verdicts, with a cap on each record and on the file."""

    def __init__(self, path: Path, max_bytes: int = MAX_FILE_BYTES) -> None:
        self.path, self.max_bytes = Path(path), max_bytes
        self._lock = threading.Lock()

    def append(self, entry: dict) -> str:
        """Write one record; returns "" or why it was not written."""
        line = json.dumps(entry, ensure_ascii=False) + "\n"
        size = len(line.encode("utf-8"))
        if size > MAX_RECORD_BYTES:
            return f"record of {size} bytes is over the {MAX_RECORD_BYTES} limit"
        with self._lock:
            try:
                used = self.path.stat().st_size if self.path.exists() else 0
                if used + size > self.max_bytes:
                    return f"{self.path} is full ({used} bytes of {self.max_bytes})"
                self.path.parent.mkdir(parents=True, exist_ok=True)
                with open(self.path, "a", encoding="utf-8") as f:
                    f.write(line)
            except OSError as e:
                return f"cannot write {self.path} ({e.strerror or e})"
        return ""


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
            out.append(question_error(case.question, e))
            continue
        now = answer.quotes[0] if answer.quotes else None
        same = case.disliked == ((now.source, now.start, now.end) if now else None)
        out.append({"question": case.question, "still_disliked": same,
                    "now": now.text if now else None})  # fmt: skip
    return out
