"""Synthetic transcripts N times the size of the interview, the same on every run and machine."""

from __future__ import annotations

import random
import re
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent
OUT = PROJECT / "bench" / "out"
INTERVIEW = PROJECT / "data" / "interview.txt"

# Word -> alternatives; replacements keep sentence boundaries (no dots, no abbreviations) and
# read as roughly the same interview.
SUBSTITUTIONS = {
    "war": ["conflict", "fighting", "hostilities"],
    "cooperation": ["partnership", "collaboration", "engagement"],
    "security": ["safety", "defence", "stability"],
    "countries": ["nations", "states"],
    "country": ["nation", "state"],
    "region": ["area", "neighbourhood"],
    "support": ["assistance", "backing", "help"],
    "important": ["significant", "vital", "essential"],
    "partners": ["associates", "friends"],
    "allies": ["member states", "members"],
    "relations": ["ties", "links"],
    "peace": ["calm", "reconciliation"],
    "process": ["path", "procedure"],
    "strategic": ["geopolitical", "long-term"],
    "energy": ["power", "fuel"],
    "international": ["global", "worldwide"],
    "decision": ["choice", "resolution"],
    "many": ["numerous", "several"],
    "role": ["part", "function"],
    "years": ["decades", "seasons"],
    "new": ["fresh", "novel"],
    "illegal": ["unlawful", "illegitimate"],
    "efforts": ["endeavours", "attempts"],
    "successes": ["achievements", "gains"],
    "stability": ["security", "order"],
    "aggression": ["hostility", "assault"],
    "Russia": ["Moscow", "the Kremlin"],
    "Ukraine": ["Kyiv", "Ukraine"],
    "Azerbaijan": ["Baku", "Azerbaijan"],
    "Armenia": ["Yerevan", "Armenia"],
    "Georgia": ["Tbilisi", "Georgia"],
    "NATO": ["the Alliance", "the North Atlantic Alliance"],
}
_WORD = re.compile(r"[A-Za-z][A-Za-z'-]*")
_SENTENCE_START = re.compile(r"(?:^|[.!?]\s+|^-\s+)$")


def _headline(line: str) -> str | None:
    s = line.strip()
    if len(s) > 2 and s[0] == s[-1] == '"' and '"' not in s[1:-1]:
        return s[1:-1]
    return None


def _vary(line: str, rng: random.Random, vocabulary: list[str], other: float) -> str:
    """The line with some words swapped: table words often, other long words with p=`other`."""

    def swap(m: re.Match[str]) -> str:
        word, suffix = m.group(), ""
        if word.endswith("'s"):
            word, suffix = word[:-2], "'s"
        options = SUBSTITUTIONS.get(word)
        if options and rng.random() < 0.6:
            new = rng.choice(options)
        elif not options and word.islower() and len(word) >= 4 and rng.random() < other:
            new = rng.choice(vocabulary)
        else:
            return m.group()
        if word[0].isupper() and _SENTENCE_START.search(line[: m.start()]):
            new = new[0].upper() + new[1:]
        return new + suffix

    return _WORD.sub(swap, line)


def synthesize(text: str, copies: int) -> str:
    """The interview's sections `copies` times, with numbered headlines and varied words.

    The title stays (it names the speakers); copy 1 is the original text, the others are
    varied with a random generator seeded by the copy number, so the output is the same on
    every run and machine, and a varied line is varied again while it repeats an earlier one.
    """
    lines = text.splitlines()
    title, body = lines[0], lines[1:]
    vocabulary = sorted({w for w in _WORD.findall(text) if w.islower() and len(w) >= 5})
    out, seen = [title], set(body)
    for copy in range(1, copies + 1):
        rng = random.Random(f"bench-copy-{copy}")
        for line in body:
            head = _headline(line)
            if head is not None:
                out.append(f'"{head} (part {copy})"')
            elif not line.strip() or copy == 1:
                out.append(line)
            else:
                # Vary harder until the line is new (a few tries: short lines may stay repeats).
                for attempt in range(8):
                    varied = _vary(line, rng, vocabulary, 0.12 + 0.08 * attempt)
                    if varied not in seen:
                        break
                seen.add(varied)
                out.append(varied)
    return "\n".join(out) + "\n"


def corpus(size: int) -> Path:
    """The transcript file for a size: the interview itself at 1, else a synthetic one."""
    if size == 1:
        return INTERVIEW
    path = OUT / "data" / f"interview-{size}x" / f"interview-{size}x.txt"
    text = synthesize(INTERVIEW.read_text(encoding="utf-8"), size)
    if not path.exists() or path.read_text(encoding="utf-8") != text:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return path
