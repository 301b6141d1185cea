"""The real packaged model judged on every shared eval set, beside its own baselines."""

import numpy as np
import pytest
from conftest import INTERVIEW, ROOT, SHARED, read_exact

from qa import evaluate as ev
from qa.engine import Engine

pytestmark = pytest.mark.integration
EVAL = SHARED / "eval"


class Remembering:
    """The real model, remembering what it embedded: the same transcripts indexed again on
    another backend get the very vectors FAISS got, and a question asked again (by another
    test, another backend or a baseline) its own vectors, without running the model twice."""

    def __init__(self, embedder) -> None:
        self.embedder = embedder
        self.seen: dict[str, tuple] = {}  # encode_tokens' three outputs, by text
        self.plain: dict[str, np.ndarray] = {}  # encode's, by text

    def __getattr__(self, name: str):
        return getattr(self.embedder, name)

    def encode_tokens(self, texts, batch_size: int = 64, progress: bool = False):
        todo = [t for t in dict.fromkeys(texts) if t not in self.seen]
        if todo:
            vectors, tokens, pieces = self.embedder.encode_tokens(todo, batch_size, progress)
            self.seen.update(zip(todo, zip(vectors, tokens, pieces, strict=True), strict=True))
        rows = [self.seen[t] for t in texts]
        vectors = np.array([r[0] for r in rows], np.float32).reshape(len(rows), self.embedder.dim)
        return vectors, [r[1] for r in rows], [r[2] for r in rows]

    def encode(self, texts, batch_size: int = 64, progress: bool = False) -> np.ndarray:
        todo = [t for t in dict.fromkeys(texts) if t not in self.plain]
        if todo:
            self.plain.update(zip(todo, self.embedder.encode(todo, batch_size, progress), strict=True))
        return np.array([self.plain[t] for t in texts], np.float32).reshape(len(texts), self.embedder.dim)


@pytest.fixture(scope="module")
def remembering(embedder) -> Remembering:
    return Remembering(embedder)


@pytest.fixture(scope="module")
def suite(tmp_path_factory, remembering, interview_index):
    """(set, engine, scores by retriever) for every set of ../shared/eval and eval/."""
    if not EVAL.is_dir():
        pytest.skip("the shared eval sets are not beside the project")
    interview = Engine(INTERVIEW, interview_index, embedder=remembering, progress=False, log=lambda m: None)
    engines, out = {INTERVIEW: interview}, []
    for s in ev.discover(EVAL, INTERVIEW) + ev.discover(ROOT / "eval", INTERVIEW):
        if s.data not in engines:
            engines[s.data] = Engine(s.data, tmp_path_factory.mktemp("index"), embedder=remembering,
                                     progress=False, log=lambda m: None)  # fmt: skip
        scores = {x.name: x for x in ev.evaluate(engines[s.data], s.questions, s.off_topic)}
        out.append((s, engines[s.data], scores))
    return out


def test_qa_beats_both_baselines_on_every_set(suite):
    for s, _, scores in suite:
        if not s.questions:
            continue
        qa, best = scores["qa"], max(scores["bm25"].hit3, scores["dense"].hit3)
        assert qa.hit3 >= best, (s.name, qa, scores["bm25"], scores["dense"])
        assert qa.hit1 >= min(scores["bm25"].hit1, scores["dense"].hit1), s.name


def test_qa_beats_plain_dense_windows_on_heldout2(suite):
    """heldout2 was written after the ranking: there, cosine over plainly embedded windows of
    1-3 sentences (what qa quotes) was once the better ranking (0.73 against 0.78 here; now even)."""
    s, _, scores = next((x for x in suite if x[0].name == "heldout2"), (None, None, None))
    if s is None:
        pytest.skip("no heldout2 in the shared eval sets")
    assert scores["qa"].hit3 >= scores["dense windows"].hit3, (scores["qa"], scores["dense windows"])
    assert scores["qa"].hit1 >= scores["dense windows"].hit1, (scores["qa"], scores["dense windows"])


def test_each_transcript_other_than_an_interview_clears_its_baselines(suite):
    episodes = [(s, x) for s, _, x in suite if s.name.startswith("friendsqa/")]
    if not episodes:
        pytest.skip("no FriendsQA episodes in the shared eval sets")
    qa = sum(x["qa"].hit3 * s_n for s, x in episodes for s_n in [len(s.questions)])
    best = sum(max(x["bm25"].hit3, x["dense"].hit3) * len(s.questions) for s, x in episodes)
    assert qa >= best + 0.05 * sum(len(s.questions) for s, _ in episodes)


def test_answers_refusals_and_quote_length_on_the_interview_sets(suite):
    for s, _, scores in suite:
        qa = scores["qa"]
        if s.questions:
            assert qa.answered >= 0.6, (s.name, qa)  # heldout2 0.63; the others 0.83 or more
        if qa.refused is not None:
            assert qa.refused >= 0.9, (s.name, qa)
        if s.data == INTERVIEW and s.questions:
            assert qa.quote_chars <= 300, (s.name, qa)


def test_near_misses_are_not_all_answered(suite):
    near = [x["qa"].near for s, _, x in suite if x["qa"].near is not None]
    if not near:
        pytest.skip("no near misses in the eval sets")
    assert min(near) >= 0.2, near  # near_misses 0.24 (11 of 45), heldout2 0.38


def test_stand_alone_questions_keep_their_figures_inside_one_conversation(suite):
    """The interview's sets lose at most 0.02 (one question in 50); FriendsQA's lines, short and
    full of "they" and "it", lose more (s02_e23: 0.71 alone, 0.68 in one conversation)."""
    for s, _, scores in suite:
        qa = scores["qa"]
        if qa.conversation_hit3 is not None:
            allowed = 0.025 if s.data == INTERVIEW else 0.05
            assert qa.conversation_hit3 >= qa.hit3 - allowed, (s.name, qa)


def test_every_quote_is_verbatim_and_cited(suite):
    for s, engine, _ in suite:
        raw = read_exact(s.data)
        for q in s.questions[:40] + s.off_topic:
            answer = engine.ask(q["question"], 3)
            for quote in answer.quotes + ([answer.closest] if answer.closest else []):
                assert raw[quote.start : quote.end] == quote.text
                assert quote.highlight_start >= quote.start and quote.highlight_end <= quote.end
                assert quote.speaker


def test_the_title_and_the_interviewer_are_quotable(suite):
    engine = next(e for s, e, _ in suite if s.data == INTERVIEW)
    for question in ["Who interviewed him, and for which agency?", "Who is he?", "Who is Xavier Colomina?",
                     "What is this interview about?"]:  # fmt: skip
        answer = engine.ask(question)
        assert answer.answered and answer.quotes[0].role == "title", (question, answer.quotes[0])
    answer = engine.ask("What did the interviewer say Iran's foreign minister denied?")
    assert any("denied this information" in q.text for q in answer.quotes), answer.quotes


def test_plainly_off_topic_questions_are_refused(suite):
    engine = next(e for s, e, _ in suite if s.data == INTERVIEW)
    answer = engine.ask("What is the capital of France?")
    assert not answer.answered and answer.quotes == [] and answer.closest is not None


def _without_scores(answer: dict) -> dict:
    """All but the scores, and the source's folder: it is shown relative to where the engine
    was built (each test runs in its own folder), and each engine holds one file."""
    same = lambda q: {k: v for k, v in q.items() if k not in ("score", "source")}  # noqa: E731
    closest = answer["closest"] and same(answer["closest"])
    return {**answer, "quotes": [same(q) for q in answer["quotes"]], "closest": closest, "confidence": None}


def test_qdrant_gives_the_answers_faiss_gives(suite, tmp_path_factory, remembering):
    """`--backend qdrant` (Qdrant Edge) computes the three signals in its engine: every answer of
    every shared set (the first 40 questions of each) is the same, quote for quote."""
    from embeddings import edge

    folder = edge.connect(tmp_path_factory.mktemp("qdrant"))
    engines = {}
    for n, (s, faiss_engine, _) in enumerate(suite):
        if s.data not in engines:
            engines[s.data] = Engine(
                s.data, tmp_path_factory.mktemp("index"), embedder=remembering, progress=False,
                log=lambda m: None,
                backend=lambda _dir, model, n=n: edge.EdgeStore(folder, model, f"set{n}"),
            )  # fmt: skip
        qdrant_engine = engines[s.data]
        assert type(qdrant_engine.ranker.signals).__name__ == "EdgeSignals"
        for q in s.questions[:40] + s.off_topic:
            a, b = faiss_engine.ask(q["question"]).to_dict(), qdrant_engine.ask(q["question"]).to_dict()
            assert _without_scores(a) == _without_scores(b), (s.name, q["question"])
            # At most one step of the 4-digit rounding apart (1e-4, and binary float's noise on it).
            assert abs(a["confidence"] - b["confidence"]) <= 1e-4 + 1e-9
            for x, y in zip(a["quotes"], b["quotes"], strict=True):
                assert abs(x["score"] - y["score"]) <= 1e-4 + 1e-9
