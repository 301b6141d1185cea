import json

import numpy as np
import pytest
from conftest import INTERVIEW, FakeEmbedder

from qa import evaluate as ev
from qa.engine import Engine


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


def test_calibrate_fits_one_threshold_over_every_set(tmp_path):
    e = Engine(INTERVIEW, tmp_path / "i", embedder=FakeEmbedder(), progress=False, log=lambda m: None)
    questions = [{"question": "Is NATO a party to this war?"}, {"question": "Finland and Sweden joining"}]
    more = [{"question": "Russia annexed Crimea in 2014"}]
    off_topic = [{"question": "How do I bake sourdough bread?"}, {"question": "Who painted the Mona Lisa?"},
                 {"question": "Who wrote Hamlet?", "hard": True}]  # fmt: skip
    fit = ev.calibrate([(e, questions, off_topic), (e, more, [])])
    assert fit["in_scope"] == 3 and fit["off_topic"] == 2  # a hard one is not plainly off-topic
    assert fit["balanced_accuracy"] == 1.0 and 0 <= fit["alpha"] <= 1
    # The engine's confidence with the fitted weight answers every in-scope question, refuses the rest.
    confidence = [e.ranker.confidence(e.query(q["question"]), fit["alpha"]) for q in questions + more]
    assert min(confidence) >= fit["threshold"]
    assert all(
        e.ranker.confidence(e.query(q["question"]), fit["alpha"]) < fit["threshold"] for q in off_topic[:2]
    )


NATO = ["Is NATO a party to this war?", "Finland and Sweden joining", "What about Iranian drones?"]


def asked(questions, **extra):
    return [{"question": q, **extra} for q in questions]


def test_calibrate_picks_the_best_split_when_none_is_perfect(tmp_path):
    """One in-scope question is really off-topic and one off-topic question is really about the
    interview: the fit answers the rest, refuses the rest, and no weight or threshold does better."""
    e = Engine(INTERVIEW, tmp_path / "i", embedder=FakeEmbedder(), progress=False, log=lambda m: None)
    in_scope = asked([*NATO, "Russia annexed Crimea in 2014", "Who painted the Mona Lisa?"])
    off_topic = asked(["How do I bake sourdough bread?", "Who wrote Hamlet?", "What is the capital of Peru?",
                       "NATO and Azerbaijan cooperation"])  # fmt: skip
    fit = ev.calibrate([(e, in_scope, off_topic)])
    reloaded = Engine(INTERVIEW, tmp_path / "i", embedder=FakeEmbedder(), progress=False, log=lambda m: None)
    assert reloaded.report.embedded_windows == 0  # its vectors read back from disk
    assert ev.calibrate([(reloaded, in_scope, off_topic)]) == fit  # the same sets, the same fit
    e.calibration = fit
    answered = {q["question"] for q in in_scope + off_topic if e.ask(q["question"]).answered}
    assert answered == {q["question"] for q in in_scope[:4] + off_topic[3:]}
    assert fit["balanced_accuracy"] == pytest.approx((4 / 5 + 3 / 4) / 2)
    # Every weight on the grid and every threshold that splits the questions differently.
    queries = {q["question"]: e.query(q["question"]) for q in in_scope + off_topic}
    for alpha in np.arange(0.0, 1.01, 0.05):
        scores = {q: e.ranker.confidence(query, alpha) for q, query in queries.items()}
        for t in scores.values():
            yes = np.mean([scores[q["question"]] >= t for q in in_scope])
            no = np.mean([scores[q["question"]] < t for q in off_topic])
            assert (yes + no) / 2 <= fit["balanced_accuracy"] + 1e-9, (alpha, t)


def test_calibrate_needs_off_topic_questions_somewhere(tmp_path):
    e = Engine(INTERVIEW, tmp_path / "i", embedder=FakeEmbedder(), progress=False, log=lambda m: None)
    with pytest.raises(ValueError, match="plainly off-topic"):
        ev.calibrate([(e, asked(NATO), []), (e, asked(NATO), asked(["Who wrote Hamlet?"], hard=True))])
    # A set of off-topic questions alone and a set of in-scope ones alone fit together.
    fit = ev.calibrate([(e, [], asked(["How do I bake sourdough bread?"])), (e, asked(NATO), [])])
    assert (fit["in_scope"], fit["off_topic"], fit["balanced_accuracy"]) == (3, 1, 1.0)
