import faiss
import numpy as np
import pytest

from qa.retrieve import (
    FEATURES,
    MAX_WINDOW_CHARS,
    SEEN_PENALTY,
    Bm25,
    Hit,
    Query,
    Ranker,
    Rarity,
    Window,
    about_the_interview,
    as_float32,
    content_tokens,
    content_words,
    demote_seen,
    dense_search,
    question_type,
    tokenize,
    type_missed,
    verdict,
    window_text,
    windows,
    zscore,
)
from qa.transcript import ANSWER, QUESTION, TITLE, Passage

E = np.eye(4, dtype=np.float32)  # four hand-written directions: drones, time, bread, asking


def test_as_float32_is_the_exact_cast_of_every_finite_float16():
    every = np.arange(1 << 16, dtype=np.uint16).view(np.float16)
    finite = every[np.isfinite(every)].reshape(-1, 2)[:, ::-1]  # not contiguous, as a slice may be
    out = as_float32(finite)
    assert out.dtype == np.float32
    assert np.array_equal(out.view(np.uint32), finite.astype(np.float32).view(np.uint32))  # bit for bit
    assert as_float32(np.zeros((0, 4), np.float16)).shape == (0, 4)
    assert np.array_equal(as_float32(E), E)  # float32 already: unchanged


def test_dense_search_with_hand_written_vectors():
    vectors = np.array([[1, 0, 0, 0], [0, 1, 0, 0], [0.6, 0.8, 0, 0]], dtype=np.float32)
    index = faiss.IndexFlatIP(4)
    index.add(vectors)
    hits = dense_search(index, E[1], 2)
    assert [row for row, _ in hits] == [1, 2]
    assert np.isclose(hits[1][1], 0.8)
    assert dense_search(index, E[1], 10)[-1][0] == 0
    assert dense_search(index, E[1], 0) == []
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


def test_rarity_is_the_idf_of_bm25_without_its_matrix():
    docs = ["the cat sat", "", "the dog sat", "a dog and a dog", "Ça été", "?"]
    bm, rare = Bm25(docs), Rarity(docs)
    assert rare.docs == len(docs) and rare.vocab.keys() == bm.vocab.keys()
    for w, j in bm.vocab.items():
        assert rare.idf[rare.vocab[w]] == bm.idf[j] and rare.idf.dtype == bm.idf.dtype
    assert rare.idf[rare.vocab["dog"]] < rare.idf[rare.vocab["cat"]]
    assert not Rarity([]).vocab and Rarity([]).docs == 0


def test_zscore():
    z = zscore(np.array([1.0, 2.0, 3.0]))
    assert np.isclose(z.mean(), 0) and np.isclose(z.std(), 1) and z[0] < z[1] < z[2]
    assert not zscore(np.array([5.0, 5.0])).any()  # no spread: the signal says nothing
    assert zscore(np.zeros(0)).shape == (0,)


def test_content_tokens_drop_stopwords_and_punctuation():
    vectors = np.arange(6, dtype=np.float32).reshape(6, 1)
    pieces = ["what", "is", "the", "interven", "##tion", "?"]
    assert content_tokens(vectors, pieces).ravel().tolist() == [3, 4]
    assert content_tokens(vectors[:2], ["▁Iran", "Ġdrones"]).ravel().tolist() == [0, 1]
    assert content_words(pieces).tolist() == [0, 0]  # "interven" "##tion": one word
    assert content_words(["▁Iran", "Ġdrones"]).tolist() == [0, 1]
    # Nothing but stopwords: every token is kept, so that a question always has some.
    assert content_tokens(vectors[:3], ["what", "is", "?"]).ravel().tolist() == [0, 1, 2]


def passage(i, role, text, turn, speaker=None, start=None):
    start = i * 100 if start is None else start
    speaker = speaker or ("Bob" if role == ANSWER else "Ann")
    return Passage("s.txt", start, start + len(text), text, speaker, "", "", turn, role)


# Ann asks in turn 0; Bob answers with two sentences in turn 1, then talks of bread in turn 2.
PASSAGES = [
    passage(0, QUESTION, "Where do the drones come from?", 0),
    passage(1, ANSWER, "The drones come from Iran.", 1),
    passage(2, ANSWER, "They arrived in autumn.", 1),
    passage(3, ANSWER, "Bread is baked daily.", 2),
]
# One row per window: the four sentences alone, then sentences 1-2 together.
VECTORS = np.array([[0.6, 0, 0, 0.8], E[0], E[1], E[2], [0.8, 0.6, 0, 0]], dtype=np.float32)
TOKENS = np.array([E[3], E[0], E[0], E[1], E[2]], dtype=np.float16)  # "where", "drones" | ...
COUNTS = np.array([2, 1, 1, 1], dtype=np.int32)
DRONES = Query("drones Iran", E[0], E[:1])


def ranker(index=None):
    return Ranker(PASSAGES, VECTORS, TOKENS, COUNTS, index)


def test_windows_are_runs_of_one_turn_single_sentences_first():
    ws = windows(PASSAGES)
    assert ws == [Window(0, 0), Window(1, 1), Window(2, 2), Window(3, 3), Window(1, 2)]
    assert all(ws[i] == Window(i, i) for i in range(len(PASSAGES)))
    three = [passage(i, ANSWER, f"Sentence {i}.", 0) for i in range(4)]
    assert windows(three)[4:] == [Window(0, 1), Window(1, 2), Window(2, 3), Window(0, 2), Window(1, 3)]
    long = [passage(0, ANSWER, "x" * 300, 0, start=0), passage(1, ANSWER, "y" * 150, 0, start=301)]
    assert long[1].end - long[0].start > MAX_WINDOW_CHARS
    assert windows(long) == [Window(0, 0), Window(1, 1)]  # too long to be one quote
    assert windows([]) == []


def test_window_text_names_the_speaker():
    assert window_text(PASSAGES, Window(1, 2)) == "Bob: The drones come from Iran. They arrived in autumn."


def test_ranker_needs_one_vector_per_window():
    with pytest.raises(ValueError, match="4 vectors for 5 windows"):
        Ranker(PASSAGES, VECTORS[:4], TOKENS, COUNTS)


def test_rank_scores_windows_and_highlights_the_best_sentence():
    hits = ranker().rank(DRONES)
    assert [(h.first, h.last) for h in hits][:3] == [(1, 1), (1, 2), (0, 0)]
    assert hits[1].best == 1  # the window of two sentences marks the one about drones
    assert all(h.first <= h.best <= h.last for h in hits)
    assert len(hits) == len(VECTORS) and hits == sorted(hits, key=lambda h: -h.score)
    assert list(hits[1].rows()) == [1, 2]


def test_rank_with_a_faiss_index_matches_the_matrix():
    index = faiss.IndexFlatIP(4)
    index.add(VECTORS)
    with_index, plain = ranker(index).rank(DRONES), ranker().rank(DRONES)
    assert [(h.first, h.last, h.best) for h in with_index] == [(h.first, h.last, h.best) for h in plain]
    assert np.allclose([h.score for h in with_index], [h.score for h in plain])


def test_maxsim_is_the_best_token_match_per_query_token():
    sims = ranker().maxsim(DRONES.tokens, np.arange(len(VECTORS)))
    assert np.allclose(sims, [1, 1, 0, 0, 1])


def test_interviewer_lines_rank_below_an_equally_good_answer():
    ps = [passage(0, QUESTION, "drones from Iran", 0), passage(1, ANSWER, "drones from Iran", 1)]
    tokens = np.array([E[0], E[0]], dtype=np.float16)
    r = Ranker(ps, np.array([E[0], E[0]]), tokens, np.array([1, 1], np.int32))
    hits = r.rank(Query("drones Iran", E[0], E[:1]))
    assert [h.first for h in hits] == [1, 0]
    assert hits[0].score > hits[1].score


def test_allowed_excludes_windows_touching_a_masked_passage():
    allowed = np.array([True, False, True, True])
    hits = ranker().rank(DRONES, allowed=allowed)
    assert {(h.first, h.last) for h in hits} == {(0, 0), (2, 2), (3, 3)}
    assert hits[0].first == 0  # the question is the best that is left
    only_bread = ranker().rank(DRONES, allowed=np.array([False, False, False, True]))
    assert [(h.first, h.last) for h in only_bread] == [(3, 3)]
    assert ranker().rank(DRONES, allowed=np.zeros(4, dtype=bool)) == []


def test_demote_seen_lowers_windows_sharing_a_sentence_with_the_quote_shown():
    p = SEEN_PENALTY
    shown = Hit(1, 2, 2, 9.0)  # sentences 1 and 2
    sharing = [Hit(1, 1, 1, 1.5 + p), Hit(1, 2, 1, 1.3 + p), Hit(0, 1, 0, 1.25 + p), Hit(2, 3, 3, 0.9 + p),
               Hit(2, 2, 2, p - 0.4)]  # fmt: skip
    apart = [Hit(0, 0, 0, 1.6), Hit(3, 3, 3, 1.2)]  # beside the quote shown, not in it
    hits = sorted(sharing + apart, key=lambda h: -h.score)
    assert hits[0] == Hit(1, 1, 1, 1.5 + p)  # first before the follow-up
    out = demote_seen(hits, shown)
    assert [(h.first, h.last) for h in out] == [(0, 0), (1, 1), (1, 2), (0, 1), (3, 3), (2, 3), (2, 2)]
    scores = {(h.first, h.last): h.score for h in out}
    for h in sharing:
        assert np.isclose(scores[(h.first, h.last)], h.score - p), h
    assert scores[(0, 0)] == 1.6 and scores[(3, 3)] == 1.2
    assert {(h.first, h.last, h.best) for h in out} == {(h.first, h.last, h.best) for h in hits}
    assert demote_seen([], shown) == []


def test_coverage_is_share_of_known_words():
    ps = [passage(0, ANSWER, "drones from Iran", 0)]
    r = Ranker(ps, E[:1], np.array([E[0]], np.float16), np.array([1], np.int32))
    assert r.coverage("Iran drones") == 1.0
    assert r.coverage("sourdough bread recipe") == 0.0
    assert 0 < r.coverage("Iran bread") < 1
    assert r.coverage("what is the") == 0.0  # stopwords only


def test_verdict_reads_two_thresholds_of_one_logistic_score():
    r = ranker()
    _, evidence = r.search(DRONES)
    assert evidence.coverage == r.coverage("drones Iran")
    allowed = np.array([True, False, True, True])
    assert np.isclose(r.search(DRONES, allowed)[1].cosine, 0.6)  # the best allowed window is the question
    n = len(FEATURES)
    fit = {"mean": [0.0] * n, "scale": [1.0] * n, "coef": [10.0] + [0.0] * (n - 1),
           "answer": 0.5, "floor": 0.5}  # fmt: skip
    said = [verdict(evidence, {**fit, "intercept": b}) for b in (-10.0, -15.0)]
    assert [v for v, _ in said] == ["answer", "unsure"]  # the best cosine is 1: above the floor
    assert np.isclose(said[0][1], 0.5) and said[0][1] > said[1][1]
    assert verdict(evidence, {**fit, "intercept": -5.0, "floor": 2.0})[0] == "not in the interview"


def test_a_reply_is_found_through_the_question_it_answers():
    """Bob's "in this regard" line shares nothing with the question; Ann's question does. The
    asked signal lifts the reply, so the question does not stand in for it."""
    ps = [
        passage(0, QUESTION, "Where do the drones come from?", 0),
        passage(1, ANSWER, "Bread is baked daily in this regard.", 1),
        passage(2, ANSWER, "It rained.", 2),
    ]
    r = Ranker(
        ps, np.array([E[0], E[2], E[1]]), np.array([E[0], E[2], E[1]], np.float16), np.ones(3, np.int32)
    )
    asked, replies = r.asked(E[0], np.arange(3))
    assert replies.tolist() == [False, True, True] and np.allclose(asked[1:], [1, 1])
    assert r.asked_rows.tolist() == [0, 0]


def test_evidence_and_its_features():
    hits, evidence = ranker().search(DRONES)
    assert hits[0].first == 1 and evidence.cosine == pytest.approx(1.0)
    assert evidence.word_min == pytest.approx(1.0) and evidence.agree == 1.0
    assert len(evidence.features()) == len(FEATURES) and not evidence.about
    assert evidence.score == hits[0].score > hits[1].score


def test_the_type_check_reads_the_best_window():
    """A when-question is met by a best window holding a time, whichever rows the pool holds."""
    ps = [*PASSAGES[:3], passage(3, ANSWER, "Bread is baked on Monday.", 2)]
    question = Query("When is bread baked?", E[2], E[2:3])
    hits, evidence = Ranker(ps, VECTORS, TOKENS, COUNTS).search(question, pool=1)
    assert hits[0].first == 3 and evidence.type_missed == 0.0
    ps[3] = passage(3, ANSWER, "Bread is baked daily.", 2)
    hits, evidence = Ranker(ps, VECTORS, TOKENS, COUNTS).search(question, pool=1)
    assert hits[0].first == 3 and evidence.type_missed == 1.0


@pytest.mark.parametrize(
    "question, kind",
    [("How many soldiers left?", "number"), ("When did the war begin?", "time"), ("What year?", "time"),
     ("Who decides on membership?", "person"), ("Why did it start?", ""), ("What is the ITPP?", "")],
)  # fmt: skip
def test_question_type(question, kind):
    assert question_type(question) == kind


def test_type_missed_only_when_the_type_is_absent():
    assert type_missed("How many left?", "Nobody knows.") and not type_missed(
        "How many left?", "About 700,000."
    )
    assert type_missed("When did it begin?", "It was bad.") and not type_missed("When?", "In 2014 it began.")
    assert not question_type("In what shape was the army when the assault came?")
    assert type_missed("How many left?", "All of them, and most stayed.")
    assert not type_missed("Why?", "Because.")


@pytest.mark.parametrize(
    "question, about",
    [("Who is he?", True), ("who's she", True), ("Who interviewed him?", True), ("Who is Bob?", True),
     ("Who is Bob Smith?", True), ("What is this interview about?", True), ("What's this about?", True),
     ("Who is Putin?", False), ("Who decides on membership?", False), ("What is NATO about?", False)],
)  # fmt: skip
def test_questions_about_the_interview_itself(question, about):
    assert about_the_interview(question, ["Bob Smith", "Ann"]) is about


def test_a_title_line_answers_who_is_speaking():
    ps = [Passage("s.txt", 0, 20, "Ann talks to Bob", "Title", "", "", 0, TITLE), *PASSAGES[1:]]
    r = Ranker(ps, VECTORS, TOKENS, COUNTS)
    hits, evidence = r.search(Query("Who is Bob?", E[0], E[:1]))
    assert hits[0].first == 0 and evidence.about
    n = len(FEATURES)
    assert verdict(evidence, {"mean": [0] * n, "scale": [1] * n, "coef": [0] * n, "intercept": -9,
                              "answer": 0.5, "floor": 2.0})[0] == "answer"  # fmt: skip
    hits, evidence = r.search(DRONES)
    assert hits[0].first != 0 and not evidence.about
