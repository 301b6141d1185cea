"""Follow-up questions, resolved against the conversation without generating any text.

A follow-up ("Why?", "What about Georgia?", "Does it have a formal role there?") leans on an
earlier question: it has almost no words of its own, opens like a continuation, or points back
with a pronoun. "he" or "she" alone does not point back: in an interview it is most often the
person interviewed ("What does he think about China?" has its own subject). Such a question
is searched together with the question it follows (itself resolved the same way); a question
that stands on its own is searched alone, so that a new topic is not dragged toward the old one.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from qa.retrieve import tokenize

CONTINUATIONS = ("and", "but", "so", "also", "then", "what about", "how about", "why", "when",
                 "where", "since when", "how come", "who else", "what else")  # fmt: skip
POINTERS = frozenset("it its they them their theirs those these there this that ones".split())
PERSONS = frozenset("he him his she her".split())  # most often the one interviewed: not a pointer
MAX_OWN_WORDS = 4  # a question pointing back with more content words than this stands alone
MAX_CONTINUATION_WORDS = 2


def is_follow_up(question: str) -> bool:
    own = tokenize(question)
    words = re.findall(r"[a-z']+", question.lower())
    opening = " ".join(words[:2])
    if not own:  # "Why?" leans on what came before; "Who is he?" asks about the one interviewed
        return not any(w in PERSONS for w in words)
    if any(w in POINTERS for w in words) and len(own) <= MAX_OWN_WORDS:
        return True
    continues = any(opening == c or opening.startswith(c + " ") or words[:1] == [c] for c in CONTINUATIONS)
    return continues and len(own) <= MAX_CONTINUATION_WORDS


def searched_as(question: str, history: Sequence[str] = ()) -> str:
    """The text to search for: the question, plus the earlier question it follows, if any."""
    previous = ""
    for earlier in list(history)[-4:]:
        previous = _join(earlier, previous)
    return _join(question, previous)


def _join(question: str, previous: str) -> str:
    if previous and is_follow_up(question):
        # Only the latest question the chain rests on: older ones are already inside it.
        return f"{question} {previous}"
    return question


_GREETING = re.compile(
    r"(?:hello|hi|hey|hiya|howdy|greetings|good (?:morning|afternoon|evening|day))"
    r"(?: there| all| everyone| again)?"
)
_THANKS = re.compile(
    r"(?:(?:ok|okay|great|cool|perfect|nice|fine|good)(?: then)? ?)?"
    r"(?:thanks(?: a lot| again| very much)?|thank you(?: very much| so much)?|many thanks|thx|cheers"
    r"|bye|goodbye|ok|okay|got it|great|cool|perfect)?"
)


def small_talk(text: str) -> str:
    """ "greeting" or "thanks" when the message is only that (no question to search), else ""."""
    phrase = " ".join(re.findall(r"[a-z']+", text.lower()))
    if not phrase or len(phrase.split()) > 5:
        return ""
    if _GREETING.fullmatch(phrase):
        return "greeting"
    return "thanks" if _THANKS.fullmatch(phrase) else ""
