"""One speaker talking for a long time: index time and peak memory against the talk's size.

python bench/long_talk.py [--sizes 100,500] [--model minilm]

For each size (KB) a deterministic one-speaker SRT talk is written (cues of one or two
sentences drawn from the interview's answers, each with a counter so that no two are equal),
then `python -m qa index` runs in a child process on a fresh index folder: its wall time and
peak RSS are reported, with each size's ratio to the first. No README table: the proportion it
shows is held, with the model faked, by tests/test_hostile_files.py; run this when the parser or
the index changes.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent
INTERVIEW = PROJECT / "data" / "interview.txt"


def sentences() -> list[str]:
    text = INTERVIEW.read_text(encoding="utf-8")
    found = re.findall(r"[A-Z][^.?!\n]{30,200}[.?!]", text)
    return [s for s in found if "?" not in s]


def clock(seconds: int) -> str:
    return f"{seconds // 3600:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d},000"


def srt(size_kb: int, seed: int = 0) -> str:
    """A one-speaker SRT talk of about size_kb kilobytes."""
    rng, pool, out, n, total = random.Random(seed), sentences(), [], 0, 0
    while total < size_kb * 1000:
        n += 1
        said = " ".join(f"{rng.choice(pool)[:-1]}, point {n}." for _ in range(rng.choice((1, 2))))
        cue = f"{n}\n{clock(n * 4)} --> {clock(n * 4 + 3)}\n"
        cue += ("Speaker: " if n == 1 else "") + said + "\n\n"
        out.append(cue)
        total += len(cue.encode("utf-8"))
    return "".join(out)


def run(size_kb: int, model: str | None, folder: Path) -> dict:
    talk = folder / f"talk-{size_kb}kb.srt"
    talk.write_text(srt(size_kb), encoding="utf-8")
    command = [sys.executable, "-m", "qa", "index", "--data", str(talk), "--json",
               "--index-dir", str(folder / f"index-{size_kb}")]  # fmt: skip
    if model:
        command += ["--model", model]
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    t0 = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, cwd=PROJECT)
    seconds = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss  # KB, max over children so far
    if done.returncode != 0:
        raise SystemExit(f"index of {size_kb} KB failed: {done.stderr.strip()[-500:]}")
    report = json.loads(done.stdout)
    return {"kb": size_kb, "seconds": round(seconds, 1), "peak_mb": round(max(peak, before) / 1024),
            "windows": report.get("windows")}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", default="100,500")
    p.add_argument("--model", default=None)
    args = p.parse_args(argv)
    sizes = [int(x) for x in args.sizes.split(",")]
    with tempfile.TemporaryDirectory(prefix="qa-long-talk-") as tmp:
        rows = [run(kb, args.model, Path(tmp)) for kb in sizes]
    for r in rows:
        r["time_ratio"] = round(r["seconds"] / rows[0]["seconds"], 2)
        print(json.dumps(r))
    return 0


if __name__ == "__main__":
    sys.exit(main())
