"""Two hundred generated transcripts: indexed, served and answered by a real app process.

The processes are the real ones with the stand-in embedder (tests/standin.py, the model's 384
dimensions): what is tested here is how far the index, the start and the routes go, not the model,
which would take minutes to embed these windows. The same folder is counted alike by
`python -m qa index --json`, the app's start log and /healthz.
"""

import json
import subprocess
import sys
import time
import urllib.parse
import urllib.request

import pytest
from conftest import INTERVIEW, ROOT, env_for_subprocess, serve

from qa.retrieve import windows
from qa.transcript import ANSWER, TITLE, parse_file

pytestmark = [pytest.mark.integration, pytest.mark.scale]
FACT = "The lighthouse on Pirallahi island was repainted blue in 1998."


def generate(folder, count=200, exchanges=3):
    """Deterministic `Name:` transcripts, each a rotation of the interview's exchanges."""
    t = parse_file(INTERVIEW)
    turns = [turn for turn in t.turns if turn.role != TITLE]
    pairs = [(turns[i], turns[i + 1]) for i in range(0, len(turns) - 1, 2)]
    text = lambda turn: " ".join(t.passages[j].text for j in turn.passages)  # noqa: E731
    for n in range(count):
        lines = [f"# Conversation {n:03d} with Guest {n:03d}", ""]
        for q, a in (pairs[(n + k) % len(pairs)] for k in range(exchanges)):
            lines += [f"Host {n:03d}: {text(q)}", f"Guest {n:03d}: {text(a)}"]
        if n == 137:
            lines += [f"Host {n:03d}: Anything about the coast?", f"Guest {n:03d}: {FACT}"]
        (folder / f"conv-{n:03d}.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    assert parse_file(folder / "conv-137.md").turns[-1].role == ANSWER


def test_two_hundred_transcripts(tmp_path):
    data = tmp_path / "many"
    data.mkdir()
    generate(data)
    env = env_for_subprocess(tmp_path)
    t0 = time.time()
    cmd = [sys.executable, "tests/standin.py", "-m", "qa", "index", "--json", "--data", str(data)]
    r = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    assert len(report["added"]) == 200 and report["skipped"] == []
    build_s = time.time() - t0
    passages = [parse_file(f).passages for f in data.glob("*.md")]
    sentences, rows = sum(map(len, passages)), sum(len(windows(p)) for p in passages)
    assert (report["sentences"], report["windows"], report["embedded_windows"]) == (sentences, rows, rows)
    base = serve(tmp_path, "--data", str(data), startup_s=600, standin=True)
    try:
        url = next(base)
        with urllib.request.urlopen(url + "/healthz", timeout=30) as h:
            health = json.loads(h.read())
        assert (health["sentences"], health["windows"]) == (sentences, rows)
        said = f"index: 200 transcript(s), {sentences} sentences, {rows} windows (0 embedded now)"
        assert said in (tmp_path / "app.log").read_text(encoding="utf-8")
        q = urllib.parse.quote("When was the lighthouse on Pirallahi island repainted?")
        with urllib.request.urlopen(f"{url}/api/ask?q={q}&k=3", timeout=60) as resp:
            answer = json.loads(resp.read())
        top = answer["quotes"][0]
        assert answer["answered"] and top["text"] == FACT and top["source"].endswith("conv-137.md")
        assert top["speaker"] == "Guest 137" and top["title"] == "Conversation 137 with Guest 137"
        q = urllib.parse.quote("Is NATO a party to the war?")
        with urllib.request.urlopen(f"{url}/api/ask?q={q}&k=3&source=conv-042.md", timeout=60) as resp:
            answer = json.loads(resp.read())
        assert all(x["source"].endswith("conv-042.md") for x in answer["quotes"])
    finally:
        base.close()
    print(f"\n200 transcripts, {sentences} sentences, {rows} windows, indexed in {build_s:.0f} s")
