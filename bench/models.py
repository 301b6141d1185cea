"""The named models side by side: quality, query latency, index build throughput.

python bench/models.py [--models minilm,mpnet] [--repeat 5] [--write]

For each model, loaded once, in one run:
- quality: `qa.evaluate.evaluate` (k=3), the `qa` row, on the public set (../shared/eval) and on
  the project's paraphrased set (eval/dev_*), with the model's own refusal calibration;
- query p50: `Engine.ask` over every in-scope question of both sets, `--repeat` rounds;
- build throughput: sentences per second of a fresh index of data/interview.txt (`Engine(...)` on an
  empty index folder: parse, embed, save), median of `--repeat` builds.
Rounds alternate the models' order, so that load from other work hits them alike; the load
average is recorded. `--write` stores the figures in embeddings/models.json, which
`python -m qa models` shows.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT))

from embeddings.model import KNOWN_MODELS, Embedder  # noqa: E402
from qa import evaluate as ev  # noqa: E402
from qa.cli import MEASURED  # noqa: E402
from qa.engine import DEFAULT_DATA, Engine  # noqa: E402

PUBLIC = (PROJECT.parent / "shared/eval/questions.jsonl", PROJECT.parent / "shared/eval/out_of_scope.jsonl")
DEV = (PROJECT / "eval/dev.jsonl", PROJECT / "eval/dev_out_of_scope.jsonl")


def quality(engine: Engine, questions: Path, off_topic: Path) -> dict[str, float]:
    qa = ev.evaluate(engine, ev.read_jsonl(questions), ev.read_jsonl(off_topic), 3)[0]
    figures = {
        "hit@1": qa.hit1,
        "hit@3": qa.hit3,
        "MRR": qa.mrr,
        "answered": qa.answered,
        "refused": qa.refused,
    }
    return {k: round(v, 4) for k, v in figures.items()}


def machine() -> str:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), "unknown CPU")  # fmt: skip
    return f"{os.cpu_count()} cores, {cpu}, CPU only"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", default=",".join(KNOWN_MODELS))
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--write", action="store_true", help=f"store the figures in {MEASURED.name}")
    args = p.parse_args(argv)
    names = args.models.split(",")
    scratch = Path(tempfile.mkdtemp(prefix="qa-models-bench-"))
    load = [os.getloadavg()[0]]
    try:
        embedders = {name: Embedder(name) for name in names}
        engines = {
            n: Engine(DEFAULT_DATA, scratch / n, embedder=e, progress=False) for n, e in embedders.items()
        }
        figures = {
            n: {"upstream": e.name, "dim": engines[n].vectors.shape[1],
                "public": quality(engines[n], *PUBLIC), "dev": quality(engines[n], *DEV)}
            for n, e in embedders.items()
        }  # fmt: skip
        questions = [q["question"] for path in (PUBLIC[0], DEV[0]) for q in ev.read_jsonl(path)]
        asks, builds = {n: [] for n in names}, {n: [] for n in names}
        for r in range(args.repeat):
            for n in names if r % 2 == 0 else names[::-1]:
                for q in questions:
                    t0 = time.perf_counter()
                    engines[n].ask(q)
                    asks[n].append(time.perf_counter() - t0)
                t0 = time.perf_counter()
                fresh = Engine(
                    DEFAULT_DATA, scratch / f"build-{n}-{r}", embedder=embedders[n], progress=False
                )
                builds[n].append(len(fresh.passages) / (time.perf_counter() - t0))
            load.append(os.getloadavg()[0])
        for n in names:
            figures[n]["query_p50_ms"] = round(statistics.median(asks[n]) * 1000, 1)
            figures[n]["build_sentences_per_s"] = round(statistics.median(builds[n]))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    how = (f"bench/models.py, {date.today()}, {machine()}, k=3; query p50 over {len(questions)} questions "
           f"x {args.repeat}; build = fresh index of data/interview.txt, median of {args.repeat}; "
           f"1-min load average {min(load):.1f}-{max(load):.1f} during the run")  # fmt: skip
    print(json.dumps({"_how": how, **figures}, indent=1))
    if args.write:
        MEASURED.write_text(json.dumps({"_how": how, **figures}, indent=1) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
