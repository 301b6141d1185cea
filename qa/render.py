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

from qa.answer import VERDICTS, Answer, Quote
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
MAX_TITLE_SHOWN = 70


def shorten(text: str, limit: int, keep_end: bool = False) -> str:
    """At most `limit` characters of `text`, cut between words (a word cut in half reads as
    another word): its start, or with `keep_end` its end."""
    if len(text) <= limit:
        return text
    if keep_end:
        tail = text[-limit:]
        cut = tail.find(" ")
        return "…" + (tail[cut + 1 :] if 0 <= cut < limit // 2 else tail).lstrip()
    head = text[:limit]
    cut = head.rfind(" ")
    return (head[:cut] if cut > limit // 2 else head).rstrip(" ,;:-") + "…"


def plain(text: str) -> str:
    """Like `literal`, but its line breaks stay line breaks in the text the page copies."""
    return "&#10;".join(literal(line) for line in text.split("\n"))


OPEN_TITLE = "Show this sentence in its transcript"


def quote_html(q: Quote, best: bool, link: str = "", title: bool = True, asked: bool = True,
               kind: str = "") -> str:  # fmt: skip
    """The quote's own text, its answering sentence marked (never the file read again, which may
    have changed since), and its citation, which opens the sentence in its transcript (`link`).
    A closest passage after a refusal is not an answer: nothing in it is marked."""
    a, b = q.highlight_start - q.start, q.highlight_end - q.start
    before, mark, after = q.text[:a], q.text[a:b], q.text[b:]
    closest = kind == "closest"
    body = literal(q.text) if closest else f"{literal(before)}<mark>{literal(mark)}</mark>{literal(after)}"
    cite = [f"<strong>{literal(q.speaker)}</strong>"]
    if q.section:
        cite.append(f"section <em>“{literal(q.section)}”</em>")
    if q.time:
        cite.append(f"at {literal(q.time)}")
    if title:
        cite.append(f'<span class="qa-title">{literal(shorten(q.title or q.source, MAX_TITLE_SHOWN))}</span>')
    where = " · ".join(cite)
    if link:
        href = f"{link}#{anchor(q.highlight_start)}"
        where = f'<a class="qa-open" href="{href}" title="{OPEN_TITLE}">{where}</a>'
    style = " qa-closest" if closest else " qa-maybe" if kind == "unsure" else " qa-best" if best else ""
    parts = [
        f'<blockquote class="qa-quote{style}">{body}</blockquote>',
        f'<div class="qa-cite">— {where}</div>',
    ]
    if asked and q.asked:
        shown = shorten(q.asked, MAX_ASKED_SHOWN, keep_end=True)
        parts.append(f'<div class="qa-asked">In reply to: “{literal(shown)}”</div>')
    return "".join(parts)


REFUSAL = "The interview does not address this question."
UNSURE = "Not sure: these are the closest quotes, and they may not answer it."


def verdict_of(answer: Answer) -> str:
    """The answer's verdict; an answer made before verdicts existed has only `answered`."""
    return answer.verdict or (VERDICTS[0] if answer.answered else VERDICTS[2])


def answer_html(answer: Answer, link: Callable[[Quote], str] = lambda q: "") -> str:
    """One chat message: the best quote, then the further passages folded; or, when unsure, the
    closest passages under a plain warning; or a refusal. A button copies it as text.

    A quote names the interview only when it is not the one named just before, and the question
    it replies to only when that changes: an answer stays short. `link` gives the address of a
    quote's transcript (empty: none)."""
    verdict = verdict_of(answer)
    copy = (f'<div class="qa-tools"><button type="button" class="qa-copy">Copy this answer</button>'
            f'<span class="qa-plain" hidden>{plain(answer_text(answer))}</span></div>')  # fmt: skip
    if verdict == VERDICTS[2]:
        parts = [f'<div class="qa-refusal"><strong>{REFUSAL}</strong> Nothing in it answers it, so '
                 "nothing is quoted as an answer.</div>"]  # fmt: skip
        if answer.closest:
            parts.append(
                '<details class="qa-low"><summary>The closest quote, which is not an answer</summary>'
                f"{quote_html(answer.closest, False, link(answer.closest), kind='closest')}</details>"
            )
        return f'<div class="qa-answer qa-refused">{"".join(parts)}{copy}</div>'
    note = ""
    if answer.searched and answer.searched != answer.question:
        note = (f'<div class="qa-searched">Taken as a follow-up: “{literal(answer.searched)}” '
                f'<button type="button" class="qa-alone">Ask it on its own</button>'
                f'<span class="qa-q" hidden>{literal(answer.question)}</span></div>')  # fmt: skip
    unsure = verdict == VERDICTS[1]
    head = f'<div class="qa-unsure-head" role="note"><strong>{UNSURE}</strong></div>' if unsure else ""
    shown, previous = [], None
    for i, q in enumerate(answer.quotes):
        title = previous is None or (q.title, q.source) != (previous.title, previous.source)
        asked = previous is None or q.asked != previous.asked or title
        shown.append(quote_html(q, i == 0, link(q), title, asked, "unsure" if unsure else ""))
        previous = q
    best, more = (shown[0] if shown else ""), shown[1:]
    if more:
        label = "1 more quote" if len(more) == 1 else f"{len(more)} more quotes"
        best += f'<details class="qa-more"><summary>{label}</summary>{"".join(more)}</details>'
    kind = "qa-unsure" if unsure else "qa-answered"
    return f'<div class="qa-answer {kind}">{note}{head}{best}{copy}</div>'


# --- the quote in its place ------------------------------------------------------------------


def anchor(offset: int) -> str:
    return f"p-{offset}"


NEIGHBOURS = 3  # sentences shown on each side of the sentence in its turn, and of the turns around
TURNS_AROUND = 2  # turns shown before and after the sentence's own


def context_html(transcript: Transcript, at: int, link: str) -> str:
    """The sentence at offset `at` marked in its transcript, with the turns around it, for the
    source panel; `link` is the full transcript's page. Only a neighbourhood: a turn can be a
    whole talk. Empty when no sentence starts there."""
    i = bisect_right(transcript.turns, at, key=lambda t: t.start) - 1
    if i < 0 or at > transcript.turns[i].end:
        return ""
    n = bisect_left(transcript.passages, at, key=lambda p: p.start)
    if n >= len(transcript.passages) or transcript.passages[n].start != at:
        return ""
    out, section = [], None
    for j in range(max(0, i - TURNS_AROUND), min(len(transcript.turns), i + TURNS_AROUND + 1)):
        turn = transcript.turns[j]
        first, last = turn.passages[0], turn.passages[-1] + 1
        if j < i:
            lo, hi = max(first, last - NEIGHBOURS), last
        elif j > i:
            lo, hi = first, min(last, first + NEIGHBOURS)
        else:
            lo, hi = max(first, n - NEIGHBOURS), min(last, n + NEIGHBOURS + 1)
        if turn.section and turn.section != section:
            out.append(f'<h3 class="qa-section">{literal(turn.section)}</h3>')
        section = turn.section
        parts = ["…"] if lo > first else []
        for k in range(lo, hi):
            text = literal(transcript.passages[k].text)
            parts.append(f'<mark class="qa-here" id="qa-here">{text}</mark>' if k == n else text)
        if hi < last:
            parts.append("…")
        who = f"<strong>{literal(turn.speaker)}</strong>"
        out.append(f'<p class="qa-turn {turn.role}">{who}: {" ".join(parts)}</p>')
    return (
        f'<div class="qa-context">{"".join(out)}</div>'
        f'<p><a href="{link}#{anchor(at)}" target="_blank" rel="noopener">Open the whole transcript</a></p>'
    )


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


def citation(q: Quote, path: bool = True) -> str:
    """Who said it, where, in which transcript, and the exact span: the citation of every text
    output. What a visitor takes away (`path=False`) names the transcript by its title only: the
    file's place on the server is not theirs to know."""
    where = [q.speaker]
    if q.section:
        where.append(f"“{q.section}”")
    if q.time:
        where.append(f"at {q.time}")
    where.append(q.title or q.source.rpartition("/")[2])
    span = f"characters {q.start}–{q.end}"
    return ", ".join(where) + (f" ({q.source}, {span})" if path else f" ({span})")


def citation_text(q: Quote, path: bool = True) -> str:
    asked = f"\nIn reply to: “{q.asked}”" if q.asked else ""
    return f"“{q.text}”\n— {citation(q, path)}{asked}"


def answer_text(answer: Answer) -> str:
    """An answer as plain text to paste: its quotes with their citations, or the refusal; no
    path of the server in it."""
    verdict = verdict_of(answer)
    if verdict == VERDICTS[2]:
        return f"{answer.question}\n{REFUSAL}"
    head = [answer.question] + ([UNSURE] if verdict == VERDICTS[1] else [])
    return "\n\n".join(["\n".join(head), *(citation_text(q, path=False) for q in answer.quotes)])


def conversation_markdown(answers: list[Answer]) -> str:
    """The whole conversation as Markdown; each quote line by line inside a block quote."""
    out = ["# Conversation with the interview", ""]
    for a in answers:
        out += [f"## {_md_line(a.question)}", ""]
        if a.searched and a.searched != a.question:
            out += [f"*Searched as:* {_md_line(a.searched)}", ""]
        verdict = verdict_of(a)
        if verdict != VERDICTS[0]:
            out += [REFUSAL if verdict == VERDICTS[2] else UNSURE, ""]
        for q in a.quotes:
            out += [f"> {line}" if line else ">" for line in map(_md_escape, q.text.splitlines())]
            out += ["", f"— {_md_line(citation(q, path=False))}"]
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
