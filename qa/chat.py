"""The chat's behaviour, without Gradio: what a turn answers, what is kept, copied, exported,
judged and added. app.py only wires these to the page, so they are tested in-process.

A conversation is the list of its turns' answers (None for a turn that was not a question: an
error, a greeting); the follow-up context is taken from it, never from the page's HTML.
"""

from __future__ import annotations

import itertools
import os
import re
import sys
import threading
import urllib.parse
import uuid
from collections import OrderedDict
from collections.abc import Iterator
from pathlib import Path

from qa.conversation import is_follow_up, small_talk
from qa.engine import UPLOADS_KEY, Engine, QuestionError
from qa.feedback import FeedbackLog, record, verdict
from qa.render import answer_html, context_html, literal

ALL = "All"  # the filter value that filters nothing
POINTING_BACK = {"this", "these", "those", "it", "they", "them", "he", "she", "him", "her"}
# Nouns that carry no content of their own ("shell nouns"): "the process" means something only
# after its content was said, unless the question says it right after ("the process of joining").
SHELL_NOUNS = ("process|issue|matter|situation|question|problem|case|point|topic|idea|plan|step|"
               "decision|development|change|thing|subject|fact|approach|proposal|effort|initiative|"
               "agreement|deal|same|latter|former")  # fmt: skip
_SHELL = re.compile(
    rf"\b(?:the|this|that|these|those|such)\s+(?:[a-z-]+\s+)?(?:{SHELL_NOUNS})s?\b"
    r"(?!\s+(?:of|in|between|among|that|to|for|on|about|with|at|from|by)\b)"
)
MAX_EXAMPLE_CHARS = 200  # an example question is shown whole, on a button that wraps
MAX_EXAMPLES = 6  # buttons on the page
EXAMPLE_TRIES = 30  # questions of one transcript tried as examples, at most
MAX_SHOWN_QUESTION = 300  # of a question that could not be asked, what the chat repeats
MAX_FILES = 20  # files read from one upload event
FEEDBACK_NOT_KEPT = ("Your verdict was not kept: the feedback file is full or cannot be written. "
                     "Tell whoever runs this app.")  # fmt: skip


def stands_alone(question: str) -> bool:
    """Whether a question means something to a visitor who has read nothing before it: it is not
    a follow-up, points back with no pronoun, and leaves no "the process" to be guessed."""
    words = set(re.findall(r"[a-z']+", question.lower()))
    return not (words & POINTING_BACK or is_follow_up(question) or _SHELL.search(question.lower()))


def transcript_examples(engine, key: str, per_transcript: int = MAX_EXAMPLES) -> list[str]:
    """Questions that show what a good answer looks like: the interviewers' own questions that
    stand alone and are short enough to show whole, kept only when the interview answers them
    with someone's reply, not with the question said back."""
    t = engine.transcripts.get(key)
    if t is None:
        return []
    found, tried = [], 0
    for p in t.passages:
        if p.role != "question" or not p.text.endswith("?") or not stands_alone(p.text):
            continue
        if "<" in p.text or ">" in p.text:  # markup a visitor sent is no example for everyone's page
            continue
        if not 15 <= len(p.text) <= MAX_EXAMPLE_CHARS or p.text in found:
            continue
        tried += 1
        if tried > EXAMPLE_TRIES:
            break
        try:
            answer = engine.ask(p.text, 1, source=t.source)
        except Exception:  # noqa: BLE001 - an example is a nicety: never stop the app for one
            continue
        best = answer.quotes[0] if answer.answered else None
        if best and best.role != "question" and p.text not in best.text:
            found.append(p.text)
        if len(found) >= per_transcript:
            break
    return found


def examples(engine, per_transcript: int = MAX_EXAMPLES, cache: dict | None = None) -> list[str]:
    """Every transcript's examples, taken in turn so that each has some, at most MAX_EXAMPLES.
    `cache` keeps each transcript's by its text, so a file added costs only its own."""
    cache = {} if cache is None else cache
    lists = []
    for key, t in engine.transcripts.items():
        mark = (key, hash(t.text))
        if mark not in cache:
            cache[mark] = transcript_examples(engine, key, per_transcript)
        lists.append(cache[mark])
    mixed = [q for row in itertools.zip_longest(*lists) for q in row if q is not None]
    return list(dict.fromkeys(mixed))[:MAX_EXAMPLES]


def added_from_page(engine, key: str) -> bool:
    """Whether transcript `key` is a file of the uploads folder: only those can be removed from
    the page (a data folder may hold a folder named "uploads" too)."""
    state, folder = engine.state, engine.uploads
    if folder is None or not key.startswith(UPLOADS_KEY) or key not in state.paths:
        return False
    return Path(os.path.abspath(state.paths[key])).is_relative_to(Path(os.path.abspath(folder)))


def loaded(engine) -> list[dict]:
    """What is loaded, as the page lists it: title, speakers, sentences, and whether a visitor
    added it (only those can be removed from the page)."""
    return [
        {
            "key": key,
            "title": t.title,
            "speakers": list(t.speakers),
            "sentences": len(t.passages),
            "added": added_from_page(engine, key),
        }  # fmt: skip
        for key, t in engine.transcripts.items()
    ]


def intro(engine) -> str:
    """One line on what this is and who speaks; the rest goes in About."""
    transcripts = list(engine.transcripts.values())
    if len(transcripts) == 1:
        t = transcripts[0]
        what = f"<strong>{literal(t.title)}</strong> ({', '.join(literal(s) for s in t.speakers)})"
    else:
        what = f"{len(transcripts)} transcripts (listed under \u201cTranscripts\u201d below)"
    return (
        "<h1>Ask the interview</h1><p>Ask in your own words: the answer is the speakers' own words, "
        f"quoted verbatim, never generated. Loaded: {what}.</p>"
    )


def transcripts_html(engine) -> str:
    """The loaded transcripts as a list: title, speakers, sentences; a remove button on each one
    added from the page (the page's script hands its key to `Chat.remove`)."""
    items = []
    for t in loaded(engine):
        speakers = ", ".join(literal(s) for s in t["speakers"]) or "one speaker"
        title = literal(t["title"])
        remove = (f' <button type="button" class="qa-remove">Remove<span class="qa-sr-only"> {title}</span>'
                  f'</button><span class="qa-key" hidden>{literal(t["key"])}</span>')  # fmt: skip
        added = f" (added from this page){remove}" if t["added"] else ""
        items.append(f"<li><strong>{title}</strong>: {speakers}; {t['sentences']} sentences{added}</li>")
    return f'<ul class="qa-loaded">{"".join(items)}</ul>'


def about(engine) -> str:
    return (
        "<p>Every answer is made of the transcripts' own sentences, quoted verbatim with who said "
        "them, in which section and in reply to which question; the sentence that answers is "
        "highlighted. Click a citation to see the sentence in its transcript. When the transcripts "
        "may not answer a question, the chat says it is not sure; when they do not address it, it "
        "says so and quotes nothing as an answer. A short follow-up (\u201cWhen?\u201d) is searched "
        "together with the question before it.</p>"
        f"<p>Model: {literal(engine.model_name)}, running on this machine; nothing leaves it.</p>"
    )


def feedback_entry(liked: object, index: object, messages: object, answers: object) -> dict | None:
    """The feedback record for a like event, or None when it is not a real verdict on a real
    answer of this conversation: any client can send this event with anything in it."""
    try:
        liked = verdict(liked)
    except ValueError:
        return None
    index = index[0] if isinstance(index, list | tuple) and index else index
    if not (isinstance(index, int) and isinstance(messages, list) and isinstance(answers, list)):
        return None
    if not 0 <= index < len(messages):
        return None
    nth = sum(1 for m in messages[: index + 1] if isinstance(m, dict) and m.get("role") == "assistant") - 1
    answer = answers[nth] if 0 <= nth < len(answers) else None
    if answer is None:
        return None
    return record(answer, liked, [a.question for a in answers[:nth] if a is not None])


class Exports:
    """Each open conversation's answers, kept in memory for its Markdown download: nothing is
    written to disk, and the oldest conversations are let go beyond a bound."""

    MAX_CONVERSATIONS = 512
    MAX_ANSWERS = 200  # the latest ones of a longer conversation

    def __init__(self) -> None:
        self._answers: OrderedDict[str, list] = OrderedDict()
        self._lock = threading.Lock()

    def new(self) -> str:
        return uuid.uuid4().hex

    def put(self, token: str, answers: list) -> None:
        if not token:
            return
        with self._lock:
            self._answers[token] = answers[-self.MAX_ANSWERS :]
            self._answers.move_to_end(token)
            while len(self._answers) > self.MAX_CONVERSATIONS:
                self._answers.popitem(last=False)

    def get(self, token: str) -> list | None:
        with self._lock:
            return self._answers.get(token)

    @staticmethod
    def link(token: str) -> str:
        return (f'<a id="download" class="qa-download" href="/conversation/{token}.md" '
                'download="conversation.md">Download the conversation (Markdown)</a>')  # fmt: skip


class Chat:
    """One app's chat: the engine, the examples, the exports and the feedback file."""

    def __init__(self, engine: Engine, feedback: FeedbackLog, exports: Exports | None = None) -> None:
        self.engine, self.feedback, self.exports = engine, feedback, exports or Exports()
        self._examples: dict = {}
        self.examples = examples(engine, cache=self._examples)

    def refresh_examples(self) -> list[str]:
        """The examples for the transcripts loaded now: files may have been added or removed."""
        self.examples = examples(self.engine, cache=self._examples)
        return self.examples

    def link(self, quote) -> str:
        """The page of the quote's transcript, or "" when the file changed since the answer."""
        state = self.engine.state
        key = state.keys.get(quote.source)
        if key is None or state.transcripts[key].text[quote.start : quote.end] != quote.text:
            return ""
        return "/transcript/" + urllib.parse.quote(key)

    def context(self, key: str, at: object) -> str | None:
        """The source panel's content: the sentence at `at` in transcript `key`, or None."""
        t = self.engine.transcripts.get(key)
        try:
            at = int(at)
        except (TypeError, ValueError):
            return None
        html = context_html(t, at, "/transcript/" + urllib.parse.quote(key)) if t else ""
        return f'<h2 id="qa-panel-title">{literal(t.title)}</h2>{html}' if html else None

    @staticmethod
    def note(text: str) -> dict:
        return {"role": "assistant", "content": f'<div class="qa-note">{literal(text)}</div>'}

    def respond(
        self, message: object, history: list[dict] | None, source: str = ALL, speaker: str = ALL,
        answers: list | None = None, alone: bool = False,
    ) -> tuple[str, list[dict], list]:  # fmt: skip
        """One turn: the emptied box, the chat's messages (`history`) with the question and its
        answer, and the conversation's answers with this one (None when it was not a question).

        The follow-up context is the kept answers, as many as the chat shows turns: a chat
        emptied (or a client that sends no history) starts a new conversation. `alone` asks the
        question without them, when a visitor says it was no follow-up."""
        messages = list(history or [])
        turns = sum(1 for m in messages if isinstance(m, dict) and m.get("role") == "assistant")
        answers = list(answers or [])[:turns]
        talk = small_talk(message) if isinstance(message, str) else ""
        if talk:
            hint = f" For example: \u201c{self.examples[0]}\u201d" if self.examples else ""
            reply = "Hello." if talk == "greeting" else "You are welcome."
            messages.append({"role": "user", "content": literal(message.strip())})
            messages.append(self.note(f"{reply} Ask a question about the interview in your own words.{hint}"))
            return "", messages, answers + [None]
        earlier = [] if alone else [a.question for a in answers if a is not None]
        try:
            answer = self.engine.ask(message, 3, None if source == ALL else source,
                                     None if speaker == ALL else speaker, earlier)  # fmt: skip
        except QuestionError as e:
            if isinstance(message, str) and message.strip():
                shown = message if len(message) <= MAX_SHOWN_QUESTION else message[:MAX_SHOWN_QUESTION] + "…"
                messages.append({"role": "user", "content": literal(shown)})
            messages.append(self.note(str(e)))
            return "", messages, answers + [None]
        messages.append({"role": "user", "content": literal(answer.question)})
        messages.append({"role": "assistant", "content": answer_html(answer, self.link)})
        return "", messages, answers + [answer]

    def export(self, answers: list | None, token: str) -> str:
        """The link that downloads the conversation (each answer has its own copy button)."""
        kept = [a for a in answers or [] if a is not None]
        self.exports.put(token, kept)
        return self.exports.link(token) if kept and token else ""

    def judge(self, liked: object, index: object, messages: object, answers: object) -> str:
        """Append a like or dislike to the feedback file; returns why not, if it was not."""
        entry = feedback_entry(liked, index, messages, answers)
        why = self.feedback.append(entry) if entry else ""
        if why:
            print(f"warning: feedback not kept: {why}", file=sys.stderr)
        return why

    def add(self, files: list | None) -> Iterator[tuple[str, None]]:
        """Transcripts dropped on the page: checked, stored under names of our own, indexed
        alone while the chat keeps answering from what is already indexed."""
        from qa.uploads import MAX_BYTES, UploadError, read_sent, save_all

        named, refused, incoming = [], [], os.environ.get("GRADIO_TEMP_DIR")
        for f in (files or [])[:MAX_FILES]:
            path = Path(f if isinstance(f, str) else getattr(f, "name", "") or "")
            if not path.name:
                continue
            try:
                named.append((path.name, read_sent(path, incoming, MAX_BYTES)))
            except (UploadError, OSError) as e:
                refused.append(str(e) if isinstance(e, UploadError) else f"{path.name}: cannot be read")
                print(f"warning: upload refused: {refused[-1]}", file=sys.stderr)
                continue
            path.unlink(missing_ok=True)  # Gradio's copy, in its folder: the one kept is ours
        if not named and not refused:
            yield "", None
            return
        yield f"Checking {len(named) + len(refused)} file(s)…", None
        saved, errors = save_all(self.engine.uploads, named)
        errors = refused + errors
        problems = "".join(f"\n- {literal(e)}" for e in errors)
        if saved:
            yield f"Indexing {len(saved)} file(s); the chat keeps answering meanwhile…{problems}", None
            try:
                self.engine.refresh()
            except Exception as e:  # noqa: BLE001 - the page says so; the last index keeps serving
                print(f"warning: indexing an upload failed: {e}", file=sys.stderr)  # it may name paths
                yield f"Indexing failed; the chat answers from what it had before.{problems}", None
                return
        kept_paths = {p.resolve() for p in saved}
        state = self.engine.state
        names = [t.title for k, t in state.transcripts.items() if state.paths[k].resolve() in kept_paths]
        aside = [f"{p.name}: not indexed: {self.engine.rejected[p.name]}" for p in saved
                 if p.name in self.engine.rejected and not p.exists()]  # fmt: skip
        problems += "".join(f"\n- {literal(e)}" for e in aside)
        errors += aside
        saved = [p for p in saved if p.exists()]
        added = "".join(f"\n- **{literal(n)}**" for n in names)
        head = f"Added, and searchable now:{added}" if saved else "Nothing was added."
        yield f"{head}{chr(10) + chr(10) + 'Not added:' + problems if errors else ''}", None

    def remove(self, key: object) -> str:
        """Take a transcript added from the page out of the chat: its file goes, and the engine's
        own sync drops its rows from the index. Only files of the uploads folder can go."""
        state = self.engine.state
        if not isinstance(key, str) or key not in state.transcripts or not added_from_page(self.engine, key):
            return "Nothing was removed: that transcript is not one added from this page."
        path, title = state.paths[key], state.transcripts[key].title
        try:
            path.unlink(missing_ok=True)
            self.engine.refresh()
        except Exception as e:  # noqa: BLE001 - the page says so; the last index keeps serving
            return f"Could not remove {literal(title)}: {literal(str(e))}"
        return f"Removed **{literal(title)}**: it is no longer searched or quoted."
