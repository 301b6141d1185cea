"""`python -m qa` through a real process with the real model.

Each process finds the interview already indexed (conftest's `interview_index`), as a user's
second run does: building the index in a process is tested in test_faults.py and test_models.py."""

import json
import subprocess
import sys

import pytest
from conftest import INTERVIEW, ROOT, SHARED, env_for_subprocess, read_exact, seed_index

pytestmark = pytest.mark.integration


@pytest.fixture(autouse=True)
def _indexed(tmp_path, interview_index):
    seed_index(interview_index, tmp_path / "index")  # QA_INDEX_DIR of env_for_subprocess


def run(tmp_path, *args, stdin=None, timeout=240):
    return subprocess.run(
        [sys.executable, "-m", "qa", *args],
        input=stdin,
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env_for_subprocess(tmp_path),
        timeout=timeout,
    )


def test_ask_json(tmp_path):
    r = run(tmp_path, "ask", "--json", "--k", "2", "Did Azerbaijan help NATO in Afghanistan?")
    assert r.returncode == 0, r.stderr
    answer = json.loads(r.stdout)
    assert answer["answered"] and 1 <= len(answer["quotes"]) <= 2
    raw = read_exact(INTERVIEW)
    for q in answer["quotes"]:
        assert raw[q["start"] : q["end"]] == q["text"]
        assert (ROOT / q["source"]).resolve() == INTERVIEW.resolve()
    assert "Afghan" in answer["quotes"][0]["text"] or "Kabul" in answer["quotes"][0]["text"]


def test_ask_readable_and_refusal(tmp_path):
    r = run(tmp_path, "ask", "Which Ukrainian officials met NATO ministers?")
    assert r.returncode == 0 and "Reznikov" in r.stdout and "Xavier Colomina" in r.stdout
    r = run(tmp_path, "ask", "Who wrote Hamlet?")
    assert r.returncode == 0 and "does not address this question" in r.stdout and "not an answer" in r.stdout


def test_stdin_batch_in_order(tmp_path):
    lines = [
        "When did Russia annex Crimea?",
        json.dumps({"question": "Who wrote Hamlet?", "id": 7}),
        "",
        "   ",
        "{broken json",
        json.dumps({"question": ""}),
    ]
    r = run(tmp_path, "ask", "--k", "1", stdin="\n".join(lines) + "\n")
    assert r.returncode == 0, r.stderr
    out = [json.loads(line) for line in r.stdout.splitlines()]
    assert [o["question"] for o in out[:2]] == ["When did Russia annex Crimea?", "Who wrote Hamlet?"]
    assert out[0]["answered"] and "2014" in out[0]["quotes"][0]["text"]
    assert not out[1]["answered"]
    assert "error" in out[2] and "error" in out[3] and len(out) == 4


@pytest.mark.parametrize(
    "args, message",
    [
        (["ask", "x", "--data", "/nonexistent/file.txt"], "no such file"),
        (["ask", "x", "--k", "0"], "1 to 20"),
        (["ask", "x", "--model", "/nonexistent/model"], "does not exist"),
        (["ask", ""], "empty"),
    ],
)
def test_errors_exit_2_with_one_line(tmp_path, args, message):
    r = run(tmp_path, *args)
    assert r.returncode == 2
    assert message in r.stderr and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_eval_prints_project_and_baselines(tmp_path):
    if not (SHARED / "eval" / "questions.jsonl").exists():
        pytest.skip("no shared eval set")
    r = run(
        tmp_path,
        "eval",
        str(SHARED / "eval" / "questions.jsonl"),
        "--oos",
        str(SHARED / "eval" / "out_of_scope.jsonl"),
    )
    assert r.returncode == 0, r.stderr
    names = [line.split()[0] for line in r.stdout.splitlines()[3:]]
    assert names == ["qa", "bm25", "dense", "dense"]  # the last: "dense windows"
    assert "hit@1" in r.stdout and "refused" in r.stdout and "dense windows" in r.stdout


def test_stdin_lines_carry_history(tmp_path):
    lines = [json.dumps({"question": "When?", "history": ["Did Russia annex Crimea?"]}),
             json.dumps({"question": "When?", "history": "not a list"})]  # fmt: skip
    r = run(tmp_path, "ask", "--k", "1", stdin="\n".join(lines) + "\n")
    assert r.returncode == 0, r.stderr
    first, second = [json.loads(line) for line in r.stdout.splitlines()]
    assert first["searched"] == "When? Did Russia annex Crimea?" and "2014" in first["quotes"][0]["text"]
    assert "history must be a list" in second["error"]


def test_eval_rechecks_disliked_answers(tmp_path):
    r = run(tmp_path, "ask", "--json", "Is NATO a party to this war?")
    shown = json.loads(r.stdout)
    feedback = tmp_path / "feedback.jsonl"
    feedback.write_text(json.dumps({"liked": False, "history": [], **shown}) + "\n", encoding="utf-8")
    r = run(tmp_path, "eval", "--disliked", str(feedback))
    assert r.returncode == 0, r.stderr
    assert "1 disliked answers; 1 still give the disliked quote first" in r.stdout
    assert "[same] Is NATO a party to this war?" in r.stdout
    (tmp_path / "empty").mkdir()
    r = run(tmp_path, "eval", "--suite", str(tmp_path / "empty"))
    assert r.returncode == 2 and "no eval sets found" in r.stderr


SCENES = {
    "a": (
        "Monica: Who ate the last cookie?\nJoey: I did. I was hungry after the gym.\n"
        "Monica: You ate all of them?\nJoey: Only twelve. The box was small.\n",
        {"question": "Why did Joey eat the cookie?", "gold": ["I was hungry after the gym."]},
    ),
    "b": (
        "Ross: Where is my dinosaur book?\nRachel: I lent it to my cousin in Ohio.\n"
        "Ross: When will she give it back?\nRachel: She flies home next Tuesday.\n",
        {"question": "Who has the dinosaur book?", "gold": ["I lent it to my cousin in Ohio."]},
    ),
}


def suite(tmp_path):
    """Two interview questions with their off-topic ones, and two scenes each with its question."""
    folder = tmp_path / "suite"
    (folder / "scenes").mkdir(parents=True)
    dev = (ROOT / "eval" / "dev.jsonl").read_text(encoding="utf-8").splitlines()[:2]
    off = (ROOT / "eval" / "dev_out_of_scope.jsonl").read_text(encoding="utf-8").splitlines()[:2]
    (folder / "dev.jsonl").write_text("\n".join(dev) + "\n", encoding="utf-8")
    (folder / "dev_out_of_scope.jsonl").write_text("\n".join(off) + "\n", encoding="utf-8")
    for name, (text, question) in SCENES.items():
        (folder / "scenes" / f"{name}.txt").write_text(text, encoding="utf-8")
        (folder / "scenes" / f"{name}.jsonl").write_text(json.dumps(question) + "\n", encoding="utf-8")
    return folder


def test_eval_runs_every_set_of_a_suite_and_pools_a_folder(tmp_path):
    r = run(tmp_path, "eval", "--suite", str(suite(tmp_path)), "--json")
    assert r.returncode == 0, r.stderr
    rows = json.loads(r.stdout)
    sets = ["dev", "scenes/a", "scenes/b", "scenes (all 2)"]
    names = ("qa", "bm25", "dense", "dense windows")
    assert [(x["set"], x["name"]) for x in rows] == [(s, n) for s in sets for n in names]
    assert {x["set"]: x["n"] for x in rows} == {"dev": 2, "scenes/a": 1, "scenes/b": 1, "scenes (all 2)": 2}
    qa = {x["set"]: x for x in rows if x["name"] == "qa"}
    assert qa["dev"]["refused"] is not None and qa["scenes/a"]["refused"] is None
    # Each scene is asked of its own transcript, so its one answer is there to find.
    assert qa["scenes/a"]["hit3"] == qa["scenes/b"]["hit3"] == 1.0
    assert qa["scenes (all 2)"]["hit3"] == 1.0
    assert all(x["answered"] is None for x in rows if x["name"] != "qa")


def test_calibrate_fits_on_every_set_without_writing(tmp_path):
    from qa.engine import CALIBRATION

    before = CALIBRATION.read_bytes()
    r = run(tmp_path, "calibrate", "--suite", str(suite(tmp_path)))
    assert r.returncode == 0, r.stderr
    (model, fit), *rest = json.loads(r.stdout).items()
    assert not rest and model == "sentence-transformers/all-MiniLM-L6-v2"
    assert fit["questions"] == {"in": 4, "plain": 2, "near": 2}  # the scenes lend each other near misses
    assert set(fit) == {"mean", "scale", "coef", "intercept", "features", "answer", "floor", "questions"}
    assert -1 <= fit["floor"] <= 1 and 0 <= fit["answer"] <= 1 and len(fit["coef"]) == len(fit["features"])
    assert "under a fit made without it" in r.stderr and "hit@1 answered" in r.stderr
    assert CALIBRATION.read_bytes() == before  # only --write stores it
    assert run(tmp_path, "calibrate", "--oos", "x.jsonl").returncode == 2  # no such option any more
