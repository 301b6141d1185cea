"""Answers as HTML for the chat. All data text is escaped for HTML *and* Markdown.

The chat renders messages as Markdown with HTML allowed, so escaping `<` alone is not enough:
`**bold**` or `[x](javascript:...)` from a transcript or a user would still be interpreted.
Every character that means something to either language becomes a numeric entity, which
both show as the character itself.
"""

from __future__ import annotations

from qa.answer import Answer, Quote

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


def quote_html(q: Quote, texts: dict[str, str], best: bool) -> str:
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
    return "".join(parts)


def answer_html(answer: Answer, texts: dict[str, str]) -> str:
    """One chat message: the best quote, then the further passages, or a refusal."""
    if not answer.answered:
        parts = [
            '<div class="qa-refusal"><strong>The interview does not address this question.'
            "</strong> Nothing in it answers it, so nothing is quoted as an answer.</div>"
        ]
        if answer.closest:
            parts.append('<div class="qa-low">Closest passage (low confidence):</div>')
            parts.append(quote_html(answer.closest, texts, best=False))
        return f'<div class="qa-answer">{"".join(parts)}</div>'
    best, *more = answer.quotes
    parts = [quote_html(best, texts, best=True)]
    if more:
        parts.append('<div class="qa-more">Further passages</div>')
        parts += [quote_html(q, texts, best=False) for q in more]
    return f'<div class="qa-answer">{"".join(parts)}</div>'
