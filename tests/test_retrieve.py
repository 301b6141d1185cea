import faiss
import numpy as np

from qa.retrieve import Bm25, Ranker, dense_search, tokenize
from qa.transcript import ANSWER, QUESTION, Passage


def test_dense_search_with_hand_written_vectors():
    vectors = np.array([[1, 0, 0, 0], [0, 1, 0, 0], [0.6, 0.8, 0, 0]], dtype=np.float32)
    index = faiss.IndexFlatIP(4)
    index.add(vectors)
    hits = dense_search(index, np.array([0, 1, 0, 0], dtype=np.float32), 2)
    assert [h.passage for h in hits] == [1, 2]
    assert np.isclose(hits[1].score, 0.8)
    assert dense_search(index, np.array([0, 1, 0, 0], dtype=np.float32), 10)[-1].passage == 0
    assert dense_search(faiss.IndexFlatIP(4), np.ones(4, np.float32), 3) == []


def test_tokenize_stems_and_drops_stopwords():
    assert tokenize("What is the Intervention?") == ["interv"]
    assert tokenize("intervenes") == tokenize("Intervention")
    assert tokenize("Ça été") == ["ca", "ete"]


def test_bm25_prefers_rare_matching_words():
    bm = Bm25(["the cat sat", "the dog sat", "a dog and a dog"])
    s = bm.scores("dog")
    assert s[0] == 0 and s[2] > s[1] > 0
    assert not bm.scores("zebra").any()
    assert not Bm25([]).scores("x").any()


def passage(i, role, text, turn):
    return Passage(
        "s.txt",
        i * 10,
        i * 10 + 5,
        text,
        "A" if role == ANSWER else "Q",
        "",
        "asked?" if role == ANSWER else "",
        turn,
        role,
    )


def test_interviewer_lines_rank_below_an_equally_good_answer():
    ps = [passage(0, QUESTION, "drones from Iran", 0), passage(1, ANSWER, "drones from Iran", 1)]
    vectors = np.array([[1, 0], [1, 0]], dtype=np.float32)
    ranker = Ranker(ps, vectors)
    q = np.array([1, 0], dtype=np.float32)
    hits = ranker.rank("drones Iran", q, [])
    assert [h.passage for h in hits] == [1, 0]


def test_filter_excludes_passages():
    ps = [passage(0, ANSWER, "alpha beta", 0), passage(1, ANSWER, "alpha gamma", 1)]
    ranker = Ranker(ps, np.eye(2, dtype=np.float32))
    hits = ranker.rank("alpha", np.array([1, 0], np.float32), [], allowed=np.array([False, True]))
    assert [h.passage for h in hits] == [1]


def test_coverage_is_share_of_known_words():
    ps = [passage(0, ANSWER, "drones from Iran", 0)]
    ranker = Ranker(ps, np.eye(1, dtype=np.float32))
    assert ranker.coverage("Iran drones") == 1.0
    assert ranker.coverage("sourdough bread recipe") == 0.0
    assert 0 < ranker.coverage("Iran bread") < 1
