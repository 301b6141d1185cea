"""Choose ranking settings without fooling ourselves: leave one eval set out, choose on the rest.

    python bench/tune.py [--suite DIR ...] [--model minilm] [--index-dir DIR]

Runs qa over every set of the suites (default: ../shared/eval and eval/) for each setting of a
small grid, then, for each set in turn, picks the setting that scores best (hit@1 + hit@3, pooled
over questions) on all the OTHER sets and reports what it scores on the held-out one. FriendsQA
episodes are separate sets, so each is held out alone. A setting is only worth keeping if the
held-out figures hold up across sets. Its figures are the README's "How the settings were chosen".
"""

from __future__ import annotations

import argparse
import itertools
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from qa import cli, retrieve  # noqa: E402
from qa import evaluate as ev  # noqa: E402

GRID = {"PREFER_ANSWER": [0.6, 1.2, 1.8], "lexical": [0.5], "maxsim": [1.0], "asked": [0.0, 0.5, 1.0]}


def apply(setting: dict[str, float]) -> None:
    retrieve.PREFER_ANSWER = setting["PREFER_ANSWER"]
    retrieve.WEIGHTS.update(lexical=setting["lexical"], maxsim=setting["maxsim"], asked=setting["asked"])


def ranks(engine, questions: list[dict]) -> list[int | None]:
    golds = [ev.gold_spans(engine, q.get("gold", [])) for q in questions]
    return [ev.first_hit(engine.ask(q["question"], 3, history=q.get("history", ())), g)
            for q, g in zip(questions, golds, strict=True)]  # fmt: skip


def score(rs: list[int | None]) -> tuple[float, float]:
    n = max(len(rs), 1)
    return sum(r == 0 for r in rs) / n, sum(r is not None and r < 3 for r in rs) / n


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--suite", type=Path, action="append")
    p.add_argument("--model", default=None)
    p.add_argument("--data", type=Path, default=Path("data"))
    p.add_argument("--index-dir", type=Path, default=Path(".index"))
    args = p.parse_args()
    args.command = "eval"
    sets = [s for s in cli._suites(args) if s.questions]
    engine_of = cli._suite_engines(args, args.model, sets)
    settings = [dict(zip(GRID, values, strict=True)) for values in itertools.product(*GRID.values())]
    results = {}  # (setting index, set name) -> ranks
    for i, setting in enumerate(settings):
        apply(setting)
        for s in sets:
            results[i, s.name] = ranks(engine_of(s), s.questions)
        print(f"setting {i}: {setting}", file=sys.stderr)
    print("held-out set        n    chosen setting (on the other sets)                      hit@1  hit@3")
    for held in sets:

        def pooled(i: int, held: str = held.name) -> float:
            rs = [r for s in sets if s.name != held for r in results[i, s.name]]
            return sum(score(rs))

        best = max(range(len(settings)), key=pooled)
        h1, h3 = score(results[best, held.name])
        print(f"{held.name:19} {len(held.questions):4} {settings[best]!s:55} {h1:.2f}   {h3:.2f}")
    print("\nevery setting on every set (hit@1/hit@3):")
    for i, setting in enumerate(settings):
        cells = " ".join(f"{'/'.join(f'{x:.2f}' for x in score(results[i, s.name])):>9}" for s in sets)
        print(f"{setting!s:55} {cells}")
    print(" " * 55 + " " + " ".join(f"{s.name[-9:]:>9}" for s in sets))
    return 0


if __name__ == "__main__":
    sys.exit(main())
