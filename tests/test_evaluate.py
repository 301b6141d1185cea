import json

import numpy as np
import pytest
from conftest import INTERVIEW, FakeEmbedder

from qa import evaluate as ev
from qa.engine import Engine
from qa.retrieve import FEATURES, Evidence, on_topic, verdict


def jsonl(path, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")


def test_discover_pairs_sets_with_their_transcripts_and_off_topic_questions(tmp_path):
    suite = tmp_path / "suite"
    jsonl(suite / "questions.jsonl", [{"question": "a"}])
    jsonl(suite / "out_of_scope.jsonl", [{"question": "b"}])
    jsonl(suite / "dev.jsonl", [{"question": "c"}, {"question": "d"}])
    jsonl(suite / "dev_out_of_scope.jsonl", [{"question": "e"}])
    jsonl(suite / "scenes" / "s01.jsonl", [{"question": "f"}])
    (suite / "scenes" / "s01.txt").write_text("Ann: Hi?\nBob: Hello.\n", encoding="utf-8")
    sets = {s.name: s for s in ev.discover(suite, INTERVIEW)}
    assert sorted(sets) == ["dev", "questions", "scenes/s01"]
    assert [q["question"] for q in sets["dev"].questions] == ["c", "d"]
    assert [q["question"] for q in sets["dev"].off_topic] == ["e"]
    assert [q["question"] for q in sets["questions"].off_topic] == ["b"]
    assert sets["dev"].data == INTERVIEW and sets["scenes/s01"].data == suite / "scenes" / "s01.txt"
    assert sets["scenes/s01"].off_topic == []
    assert ev.group("scenes/s01") == "scenes" and ev.group("dev") == "dev"


def scores(name, hit1, n, answered=None, refused=None):
    return ev.Scores(name, hit1, hit1, hit1, answered, refused, 100.0, 5.0, n)


def test_pooled_weights_each_set_by_its_questions():
    a = [scores("qa", 1.0, 3, answered=1.0, refused=0.5), scores("bm25", 0.0, 3)]
    b = [scores("qa", 0.0, 1, answered=0.0), scores("bm25", 1.0, 1)]
    qa, bm25 = ev.pooled([a, b], "scenes (all 2)")
    assert (qa.name, qa.set, qa.n) == ("qa", "scenes (all 2)", 4)
    assert qa.hit1 == pytest.approx(0.75) and qa.answered == pytest.approx(0.75)
    assert bm25.hit1 == pytest.approx(0.25) and bm25.answered is None
    assert qa.row()[:3] == ["scenes (all 2)", "4", "qa"]


NATO = [
    "Is NATO a party to this war?",
    "Finland and Sweden joining",
    "What about Iranian drones?",
    "Russia annexed Crimea in 2014",
]
OFF = ["How do I bake sourdough bread?", "Who painted the Mona Lisa?", "What is the capital of Peru?"]


def asked(questions, **extra):
    return [{"question": q, **extra} for q in questions]


def judged(kind, xs, name="a"):
    """Hand-made evidence: the first feature carries the signal, the rest is constant."""
    return [ev.Judged(name, kind, [x] + [0.0] * (len(FEATURES) - 1), 0) for x in xs]


def test_fit_verdict_learns_the_signal_and_places_two_thresholds():
    data = judged("in", np.linspace(0.6, 1.0, 20)) + judged("near", np.linspace(0.3, 0.7, 20))
    data += judged("plain", np.linspace(0.0, 0.2, 10))
    fit = ev.fit_verdict(data, target=0.9)
    assert fit["coef"][0] > 0 and fit["features"] == list(FEATURES) and len(fit["coef"]) == len(FEATURES)
    assert 0.2 <= fit["floor"] < 0.6 and 0 < fit["answer"] < 1  # the floor in the gap, nearer off-topic
    figures = ev.verdict_figures(fit, data)
    assert figures["answered"] == pytest.approx(0.9) and figures["plain_refused"] == 1.0
    assert figures["hit1_answered"] == 1.0 and 0.5 <= figures["near_not_answered"] < 1
    # The same fit, read by the engine's verdict, gives the same answer/unsure/refuse split.
    for j, p in zip(data, ev.scores(fit, data), strict=True):
        said, confidence = verdict(Evidence(*j.features), fit)
        assert confidence == pytest.approx(p)
        below = on_topic(Evidence(*j.features)) < fit["floor"]
        expected = "not in the interview" if below else "answer" if p >= fit["answer"] else "unsure"
        assert said == expected


def test_each_set_counts_as_one_and_folds_leave_their_set_out():
    big = judged("in", np.linspace(0.6, 1.0, 200), "big") + judged("near", np.linspace(0.0, 0.5, 200), "big")
    small = judged("in", [0.9, 0.95], "small") + judged("near", [0.1, 0.2], "small")
    weights = ev._weights(big + small)
    assert weights[:200].sum() == pytest.approx(1) and weights[-2:].sum() == pytest.approx(1)
    folds = ev.cross_validate(big + small)
    assert set(folds) == {"big", "small"} and folds["small"]["answered"] == 1.0
    curve = ev.held_out_curve(big + small, [1.0, 0.5])
    assert curve[0][0] == 1.0 and curve[1][0] == pytest.approx(0.5, abs=0.02) and curve[1][2] == 1.0


def test_judge_suite_asks_each_set_and_lends_sibling_episodes_near_misses(tmp_path):
    e = Engine(INTERVIEW, tmp_path / "i", embedder=FakeEmbedder(), progress=False, log=lambda m: None)
    f = Engine(INTERVIEW, tmp_path / "j", embedder=FakeEmbedder(), progress=False, log=lambda m: None)
    out = ev.judge_suite([("talk", e, asked(NATO[:2]), asked(OFF[:1]) + asked(["NATO and China"], hard=True)),
                          ("eps/a", e, asked(NATO[2:3]), []), ("eps/b", f, asked(NATO[3:]), [])])  # fmt: skip
    kinds = [(j.set, j.kind, j.question) for j in out]
    assert ("talk", "plain", OFF[0]) in kinds and ("talk", "near", "NATO and China") in kinds
    assert ("eps/a", "near", NATO[3]) in kinds and ("eps/b", "near", NATO[2]) in kinds
    assert all(len(j.features) == len(FEATURES) for j in out)


def test_near_misses_alone_are_a_set_of_their_own(tmp_path):
    suite = tmp_path / "suite"
    jsonl(suite / "near_out_of_scope.jsonl", [{"question": "x", "hard": True}])
    (s,) = ev.discover(suite, INTERVIEW)
    assert (s.name, s.questions, len(s.off_topic)) == ("near", [], 1)
    e = Engine(INTERVIEW, tmp_path / "i", embedder=FakeEmbedder(), progress=False, log=lambda m: None)
    (row,) = ev.evaluate(e, [], asked(["NATO and China"], hard=True) + asked(OFF))
    assert row.hit1 is None and row.near is not None and row.refused is not None
