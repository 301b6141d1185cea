"""Answers as HTML for the chat. All data text is escaped for HTML *and* Markdown.

The chat renders messages as Markdown with HTML allowed, so escaping `<` alone is not enough:
`**bold**` or `[x](javascript:...)` from a transcript or a user would still be interpreted.
Every character that means something to either language becomes a numeric entity, which
both show as the character itself.
"""

from __future__ import annotations

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


def quote_html(q: Quote, texts: dict[str, str], best: bool, extra: str = "") -> str:
    source = texts[q.source]
    before = source[q.start : q.highlight_start]
    mark = source[q.highlight_start : q.highlight_end]
    after = source[q.highlight_end : q.end]
    body = f"{literal(before)}<mark>{literal(mark)}</mark>{literal(after)}"
    cite = [f"<strong>{literal(q.speaker)}</strong>"]
    if q.section:
        cite.append(f"section <em>“{literal(q.section)}”</em>")
    if q.time:
        cite.append(f"at {literal(q.time)}")
    title = q.title or q.source
    title = title if len(title) <= 70 else title[:69].rstrip() + "…"
    cite.append(f'<span class="qa-title">{literal(title)}</span>')
    parts = [
        f'<blockquote class="qa-quote{" qa-best" if best else ""}">{body}</blockquote>',
        f'<div class="qa-cite">— {" · ".join(cite)} <span class="qa-score">score {q.score:.2f}</span></div>',
    ]
    if q.asked:
        parts.append(f'<div class="qa-asked">In reply to: “{literal(q.asked)}”</div>')
    return "".join(parts) + extra


def answer_html(answer: Answer, texts: dict[str, str], context: Callable[[Quote], str] = lambda q: "") -> str:
    """One chat message: the best quote, then the further passages, or a refusal.

    `context` gives the HTML that places a quote in its turn (empty: none)."""
    if not answer.answered:
        parts = [
            '<div class="qa-refusal"><strong>The interview does not address this question.'
            "</strong> Nothing in it answers it, so nothing is quoted as an answer.</div>"
        ]
        if answer.closest:
            parts.append('<div class="qa-low">Closest passage (low confidence):</div>')
            parts.append(quote_html(answer.closest, texts, False, context(answer.closest)))
        return f'<div class="qa-answer">{"".join(parts)}</div>'
    if answer.searched and answer.searched != answer.question:
        note = f'<div class="qa-searched">Taken as a follow-up: “{literal(answer.searched)}”</div>'
    else:
        note = ""
    best, *more = answer.quotes
    parts = [quote_html(best, texts, True, context(best))]
    if more:
        parts.append('<div class="qa-more">Further passages</div>')
        parts += [quote_html(q, texts, False, context(q)) for q in more]
    return f'<div class="qa-answer">{note}{"".join(parts)}</div>'


# --- the quote in its place ------------------------------------------------------------------


def anchor(offset: int) -> str:
    return f"p-{offset}"


def context_html(q: Quote, transcript: Transcript, link: str) -> str:
    """The quote's whole turn and the question before it, the quoted sentences marked."""
    turn = next((t for t in transcript.turns if t.start <= q.start < t.end + 1), None)
    if turn is None:
        return ""
    parts = []
    for i in turn.passages:
        p = transcript.passages[i]
        inside = q.start <= p.start and p.end <= q.end
        parts.append(f"<mark>{literal(p.text)}</mark>" if inside else literal(p.text))
    question = ""
    if turn.asked:
        who = literal(_asker(transcript, turn))
        question = f'<div class="qa-asked"><strong>{who}</strong>: {literal(turn.asked)}</div>'
    return (
        f'<details class="qa-context"><summary>Show the whole answer in its place</summary>{question}'
        f'<div class="qa-turn"><strong>{literal(turn.speaker)}</strong>: {" ".join(parts)}</div>'
        f'<a href="{link}#{anchor(q.highlight_start)}" target="_blank">Open in the full transcript</a>'
        "</details>"
    )


def _asker(transcript: Transcript, turn) -> str:
    before = [t for t in transcript.turns if t.end <= turn.start and t.role == "question"]
    return before[-1].speaker if before else "Interviewer"


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
        "body{font:16px/1.55 system-ui,sans-serif;max-width:48em;margin:2em auto;padding:0 1em}"
        "p.question{color:#334155}span:target{background:#fde68a}h2{font-size:1.1em;margin-top:2em}"
    )
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{literal(transcript.title)}</title>"
        f"<style>{style}</style></head><body><h1>{literal(transcript.title)}</h1>{''.join(out)}</body></html>"
    )


# --- keeping it ------------------------------------------------------------------------------


def citation_text(q: Quote) -> str:
    where = [q.speaker]
    if q.section:
        where.append(f"“{q.section}”")
    if q.time:
        where.append(f"at {q.time}")
    where.append(q.title or q.source)
    cite = ", ".join(where) + f" ({q.source}, characters {q.start}–{q.end})"
    asked = f"\nIn reply to: “{q.asked}”" if q.asked else ""
    return f"“{q.text}”\n— {cite}{asked}"


def conversation_markdown(answers: list[Answer]) -> str:
    """The whole conversation as Markdown; quotes are kept verbatim inside block quotes."""
    out = ["# Conversation with the interview", ""]
    for a in answers:
        out += [f"## {_md_line(a.question)}", ""]
        if a.searched and a.searched != a.question:
            out += [f"*Searched as:* {_md_line(a.searched)}", ""]
        if not a.answered:
            out += ["The interview does not address this question.", ""]
        for q in a.quotes:
            out += ["> " + line if line else ">" for line in q.text.splitlines()]
            out += ["", f"— {_md_line(citation_text(q).split(chr(10))[1][2:])}"]
            if q.asked:
                out += ["", f"In reply to: {_md_line(q.asked)}"]
            out.append("")
    return "\n".join(out).rstrip() + "\n"


def _md_line(text: str) -> str:
    """Text outside the quotes, escaped so that Markdown shows it as written."""
    return "".join("\\" + c if c in "\\`*_[]()#+-!|<>~" else c for c in " ".join(text.split()))
