"""Answers as HTML for the chat, as text to copy and as a Markdown file to keep.

The chat renders messages as Markdown with HTML allowed, so escaping `<` alone is not enough:
`**bold**` or `[x](javascript:...)` from a transcript or a user would still be interpreted.
Every character that means something to either language becomes a numeric entity, which
both show as the character itself. The Markdown file is read as text too, so there only what
can form markup gets a backslash (`_md_escape`).
"""

from __future__ import annotations

import re
from bisect import bisect_left, bisect_right
from collections.abc import Callable

from qa.answer import Answer, Quote
from qa.transcript import Transcript

_SPECIAL = set("&<>\"'`*_[](){}#+-!|~\\$=:/.")


def literal(text: str) -> str:
    """Text that renders as itself in HTML and in Markdown, on one line."""
    out = []
    for c in text:
        if c in _SPECIAL:
            out.append(f"&#{ord(c)};")
        elif c in "\r\n\t":
            out.append(" ")
        else:
            out.append(c)
    return "".join(out)


MAX_ASKED_SHOWN = 300  # of a long question, the end is shown: that is where the asking is


def quote_html(q: Quote, best: bool, extra: str = "", title: bool = True, asked: bool = True,
               closest: bool = False) -> str:  # fmt: skip
    """The quote's own text, its answering sentence marked (never the file read again, which may
    have changed since), and its citation. A closest passage after a refusal is not an answer:
    nothing in it is marked."""
    a, b = q.highlight_start - q.start, q.highlight_end - q.start
    before, mark, after = q.text[:a], q.text[a:b], q.text[b:]
    body = literal(q.text) if closest else f"{literal(before)}<mark>{literal(mark)}</mark>{literal(after)}"
    cite = [f"<strong>{literal(q.speaker)}</strong>"]
    if q.section:
        cite.append(f"section <em>“{literal(q.section)}”</em>")
    if q.time:
        cite.append(f"at {literal(q.time)}")
    if title:
        name = q.title or q.source
        name = name if len(name) <= 70 else name[:69].rstrip() + "…"
        cite.append(f'<span class="qa-title">{literal(name)}</span>')
    kind = " qa-closest" if closest else " qa-best" if best else ""
    parts = [
        f'<blockquote class="qa-quote{kind}">{body}</blockquote>',
        f'<div class="qa-cite">— {" · ".join(cite)}</div>',
    ]
    if asked and q.asked:
        shown = q.asked if len(q.asked) <= MAX_ASKED_SHOWN else "…" + q.asked[-MAX_ASKED_SHOWN:].lstrip()
        parts.append(f'<div class="qa-asked">In reply to: “{literal(shown)}”</div>')
    return "".join(parts) + extra


REFUSAL = "The interview does not address this question."
UNSURE_NOTE = "Not sure the interview answers this. The closest passages, which may not answer it:"


def answer_html(answer: Answer, context: Callable[[Quote], str] = lambda q: "") -> str:
    """One chat message: the best quote, then the further passages folded, or a refusal.

    A quote names the interview only when it is not the one named just before, and the question
    it replies to only when that changes: an answer stays short. `context` gives the HTML that
    places a quote in its turn (empty: none)."""
    if not answer.answered and not answer.quotes:
        parts = [f'<div class="qa-refusal"><strong>{REFUSAL}</strong> Nothing in it answers it, so '
                 "nothing is quoted as an answer.</div>"]  # fmt: skip
        if answer.closest:
            parts.append(
                '<details class="qa-low"><summary>The closest passage, which is not an answer</summary>'
                f"{quote_html(answer.closest, False, closest=True)}</details>"
            )
        return f'<div class="qa-answer">{"".join(parts)}</div>'
    note = ""
    if answer.searched and answer.searched != answer.question:
        note = f'<div class="qa-searched">Taken as a follow-up: “{literal(answer.searched)}”</div>'
    if not answer.answered:  # unsure: the closest passages, said to be possibly no answer
        note += f'<div class="qa-unsure"><strong>{UNSURE_NOTE}</strong></div>'
    shown, previous = [], None
    for i, q in enumerate(answer.quotes):
        title = previous is None or (q.title, q.source) != (previous.title, previous.source)
        asked = previous is None or q.asked != previous.asked or title
        shown.append(quote_html(q, i == 0, context(q), title, asked))
        previous = q
    best, more = shown[0], shown[1:]
    if more:
        label = "1 more passage" if len(more) == 1 else f"{len(more)} more passages"
        best += f'<details class="qa-more"><summary>{label}</summary>{"".join(more)}</details>'
    return f'<div class="qa-answer">{note}{best}</div>'


# --- the quote in its place ------------------------------------------------------------------


def anchor(offset: int) -> str:
    return f"p-{offset}"


NEIGHBOURS = 3  # sentences shown on each side of a quote in its place


def context_html(q: Quote, transcript: Transcript, link: str) -> str:
    """The quote among the sentences around it in its turn, the quoted ones marked, and the
    question before it. Only a neighbourhood: a turn can be a whole talk."""
    i = bisect_right(transcript.turns, q.start, key=lambda t: t.start) - 1
    if i < 0 or q.start > transcript.turns[i].end:
        return ""
    turn = transcript.turns[i]
    first, last = turn.passages[0], turn.passages[-1] + 1
    lo = bisect_left(transcript.passages, q.start, first, last, key=lambda p: p.start)
    hi = bisect_left(transcript.passages, q.end, lo, last, key=lambda p: p.start)
    shown_from, shown_to = max(first, lo - NEIGHBOURS), min(last, hi + NEIGHBOURS)
    parts = ["…"] if shown_from > first else []
    for p in transcript.passages[shown_from:shown_to]:
        inside = q.start <= p.start and p.end <= q.end
        parts.append(f"<mark>{literal(p.text)}</mark>" if inside else literal(p.text))
    if shown_to < last:
        parts.append("…")
    question = ""
    if turn.asked:
        who = literal(_asker(transcript, i))
        question = f'<div class="qa-asked"><strong>{who}</strong>: {literal(turn.asked)}</div>'
    return (
        f'<details class="qa-context"><summary>Show the answer in its place</summary>{question}'
        f'<div class="qa-turn"><strong>{literal(turn.speaker)}</strong>: {" ".join(parts)}</div>'
        f'<a href="{link}#{anchor(q.highlight_start)}" target="_blank">Open in the full transcript</a>'
        "</details>"
    )


def _asker(transcript: Transcript, i: int) -> str:
    """Who asked what turn i replies to: the nearest question turn before it or, in a talk with
    no interviewer, the speaker just before it. Walks back only over replies to the same question."""
    turns = transcript.turns
    for j in range(i - 1, -1, -1):
        if turns[j].role == "question":
            return turns[j].speaker
        if turns[j].asked != turns[i].asked:
            break
    return turns[i - 1].speaker if i and turns[i - 1].role == "answer" else "Interviewer"


def transcript_page(transcript: Transcript) -> str:
    """The full transcript as a page, every sentence with an anchor to link a quote to."""
    out, section = [], None
    for turn in transcript.turns:
        if turn.section != section and turn.section:
            out.append(f"<h2>{literal(turn.section)}</h2>")
        section = turn.section
        sentences = " ".join(
            f'<span id="{anchor(transcript.passages[i].start)}">{literal(transcript.passages[i].text)}</span>'
            for i in turn.passages
        )
        out.append(f'<p class="{turn.role}"><strong>{literal(turn.speaker)}</strong>: {sentences}</p>')
    style = (
        ":root{color-scheme:light dark}"
        "body{font:16px/1.55 system-ui,sans-serif;max-width:48em;margin:2em auto;padding:0 1em}"
        "p.question{opacity:.85}h2{font-size:1.1em;margin-top:2em}"
        "span:target{background:#fde68a;color:#111827;scroll-margin-top:30vh;outline:2px solid #b45309}"
    )
    return (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>{literal(transcript.title)}</title><style>{style}</style></head>"
        f"<body><main><h1>{literal(transcript.title)}</h1>{''.join(out)}</main></body></html>"
    )


# --- keeping it ------------------------------------------------------------------------------


def citation(q: Quote) -> str:
    """Who said it, where, in which transcript, and the exact span: the citation of every text output."""
    where = [q.speaker]
    if q.section:
        where.append(f"“{q.section}”")
    if q.time:
        where.append(f"at {q.time}")
    where.append(q.title or q.source)
    return ", ".join(where) + f" ({q.source}, characters {q.start}–{q.end})"


def citation_text(q: Quote) -> str:
    asked = f"\nIn reply to: “{q.asked}”" if q.asked else ""
    return f"“{q.text}”\n— {citation(q)}{asked}"


def answer_text(answer: Answer) -> str:
    """An answer as plain text to paste: its quotes with their citations, or the refusal."""
    if not answer.answered and not answer.quotes:
        return f"{answer.question}\n{REFUSAL}"
    head = [answer.question] if answer.answered else [f"{answer.question}\n{UNSURE_NOTE}"]
    return "\n\n".join([*head, *(citation_text(q) for q in answer.quotes)])


def conversation_markdown(answers: list[Answer]) -> str:
    """The whole conversation as Markdown; each quote line by line inside a block quote."""
    out = ["# Conversation with the interview", ""]
    for a in answers:
        out += [f"## {_md_line(a.question)}", ""]
        if a.searched and a.searched != a.question:
            out += [f"*Searched as:* {_md_line(a.searched)}", ""]
        if not a.answered:
            out += [UNSURE_NOTE if a.quotes else REFUSAL, ""]
        for q in a.quotes:
            out += [f"> {line}" if line else ">" for line in map(_md_escape, q.text.splitlines())]
            out += ["", f"— {_md_line(citation(q))}"]
            if q.asked:
                out += ["", f"In reply to: {_md_line(q.asked)}"]
            out.append("")
    return "\n".join(out).rstrip() + "\n"


_MD_ANYWHERE = set("\\`*_[]<>&|~")  # can form markup anywhere in a line
_MD_LINE_START = re.compile(r"[#+\-=]|[0-9]+[.)]")  # can start a block: heading, list, rule


def _md_escape(line: str) -> str:
    """One line that CommonMark shows as written, with no more backslashes than that takes.

    Leading and trailing blanks go: Markdown drops them or reads them as code or a line break."""
    out = "".join("\\" + c if c in _MD_ANYWHERE else c for c in line.strip())
    m = _MD_LINE_START.match(out)
    return out[: m.end() - 1] + "\\" + out[m.end() - 1 :] if m else out


def _md_line(text: str) -> str:
    """Text outside the quotes on one line; a closing run of # would end a heading early."""
    return re.sub(r"(?<=\s)#+$", lambda m: "\\" + m.group(), _md_escape(" ".join(text.split())))
