"""A folder of transcripts: formats, incremental indexing, broken files and filters."""

import json
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from conftest import INTERVIEW, ROOT, FakeEmbedder, env_for_subprocess, read_exact

from embeddings import edge
from embeddings import index as store
from qa.answer import build
from qa.engine import Engine, QuestionError
from qa.retrieve import Hit, window_text, windows
from qa.transcript import ANSWER, QUESTION, TITLE, TITLE_SPEAKER, parse, parse_file

PODCAST = """The Harbour Podcast: an interview with Lena Berg

Tom Hale: Welcome, Lena. Why did you move to Baku?
Lena Berg: I moved for the port project. The Caspian trade was growing fast.
Tom Hale: What worries you most about the region?
Lena Berg: Drought worries me most. Water levels in the Caspian Sea are falling every year.
"""

VTT = """WEBVTT - Field recording with Omar Said

NOTE recorded in Tbilisi

1
00:00:01.000 --> 00:00:04.000
<v Reporter>How long have you been growing grapes here?</v>

2
00:00:04.500 --> 00:00:09.000
<v Omar Said>My family has grown grapes in Kakheti for four generations.

3
00:01:10.000 --> 00:01:15.000
<v Omar Said>Frost in April destroyed half of the harvest last year.
"""

SRT = """1
00:00:01,000 --> 00:00:03,000
Host: What do you cook at home?

2
00:00:03,500 --> 00:00:07,000
Chef Ana: Mostly fish stew with saffron.
"""


@pytest.fixture
def folder(tmp_path):
    data = tmp_path / "data"
    (data / "more").mkdir(parents=True)
    shutil.copy(INTERVIEW, data / "interview.txt")
    (data / "more" / "podcast.md").write_text(PODCAST, encoding="utf-8")
    (data / "more" / "field.vtt").write_text(VTT, encoding="utf-8")
    return data


def rows(text, name):
    """How many vectors a transcript gets: one per window of 1-3 sentences."""
    return len(windows(parse(text, name).passages))


def engine(tmp_path, data, embedder=None, logs=None, backend=store.FaissFolder):
    return Engine(data, tmp_path / "index", embedder=embedder or FakeEmbedder(), progress=False,
                  log=logs.append if logs is not None else (lambda m: None), backend=backend)  # fmt: skip


Factory = Callable[[Path, dict[str, str]], store.Backend]


def embedded(path: Path) -> Factory:
    """The Engine's backend for Qdrant Edge in this process, its data in `path` (opened on first use)."""
    return lambda _index_dir, model: edge.EdgeStore(edge.connect(path), model)


def release(path: Path) -> None:
    """Close this process's shards of a Qdrant Edge folder, so that another process may open it."""
    edge.release(path)


@dataclass(frozen=True)
class Backend:
    """Where a test keeps its index: the Engine's factory, and the same as flags of the CLI."""

    factory: Factory
    args: tuple[str, ...] = ()


@pytest.fixture(params=["faiss", "qdrant"])
def backend(request, tmp_path) -> Iterator[Backend]:
    """The folder checks hold on either backend: the FAISS folder, or a Qdrant Edge one."""
    if request.param == "faiss":
        yield Backend(store.FaissFolder)
        return
    path = tmp_path / "qdrant"
    yield Backend(embedded(path), ("--backend", "qdrant", "--qdrant-path", str(path)))
    release(path)


def test_vtt_voices_times_and_spans(write):
    path = write("f.vtt", VTT)
    t = parse_file(path)
    raw = read_exact(path)
    assert t.title == "Field recording with Omar Said"
    assert [(x.speaker, x.role) for x in t.turns] == [
        (TITLE_SPEAKER, TITLE),
        ("Reporter", QUESTION),
        ("Omar Said", ANSWER),
    ]
    assert t.passages[0].text == t.title and t.passages[0].time == ""
    answer = [p for p in t.passages if p.role == ANSWER]
    assert [p.time for p in answer] == ["00:00:04", "00:01:10"]
    assert answer[0].asked == "How long have you been growing grapes here?"
    for p in t.passages:
        assert raw[p.start : p.end] == p.text and "<v" not in p.text and "</v>" not in p.text


def test_a_subtitle_quote_holds_only_spoken_text(write):
    t = parse_file(write("f.vtt", VTT))
    for w in windows(t.passages):
        hit = Hit(w.first, w.last, w.first, 1.0)
        quote = build("q", [hit], t.passages, {t.source: t.text}, {}, 1, True, 1.0).quotes[0]
        assert "-->" not in quote.text and "<v" not in quote.text, quote.text


def test_srt_name_prefixes(write):
    t = parse_file(write("s.srt", SRT))
    assert [(x.speaker, x.role) for x in t.turns] == [("Host", QUESTION), ("Chef Ana", ANSWER)]
    assert t.passages[-1].text == "Mostly fish stew with saffron." and t.passages[-1].time == "00:00:03"


def test_a_folder_serves_every_format_with_its_citation(tmp_path, folder, backend):
    e = engine(tmp_path, folder, backend=backend.factory)
    assert sorted(e.report.added) == ["interview.txt", "more/field.vtt", "more/podcast.md"]
    quote = e.ask("Frost in April destroyed the grape harvest", 1).quotes[0]
    assert quote.source.endswith("field.vtt") and quote.time == "00:01:10"
    assert quote.title == "Field recording with Omar Said" and quote.speaker == "Omar Said"
    assert read_exact(folder / "more" / "field.vtt")[quote.start : quote.end] == quote.text
    quote = e.ask("Caspian Sea water levels falling drought", 1).quotes[0]
    assert quote.source.endswith("podcast.md") and quote.speaker == "Lena Berg"
    assert quote.asked == "What worries you most about the region?"


def test_incremental_add_change_delete(tmp_path, folder, backend):
    engine(tmp_path, folder, backend=backend.factory)
    fake = FakeEmbedder()
    (folder / "extra.srt").write_text(SRT, encoding="utf-8")
    (folder / "more" / "podcast.md").write_text(PODCAST.replace("every year", "each year"), encoding="utf-8")
    (folder / "more" / "field.vtt").unlink()
    e = engine(tmp_path, folder, embedder=fake, backend=backend.factory)
    r = e.report
    assert r.added == ["extra.srt"] and r.changed == ["more/podcast.md"]
    assert r.removed == ["more/field.vtt"] and r.unchanged == ["interview.txt"]
    podcast = parse_file(folder / "more" / "podcast.md").passages
    srt = parse_file(folder / "extra.srt").passages
    new_rows = len(windows(podcast)) + len(windows(srt))
    assert r.embedded_windows == new_rows == sum(fake.calls)
    stored = e.backend.whole(e.state.stored)  # Qdrant Edge keeps them in its shard only
    assert r.windows == len(e.ranker.windows) == len(stored.vectors) == 166 + new_rows
    assert r.sentences == len(e.passages)
    assert len(e.passages) == len(stored.token_counts) == 77 + len(podcast) + len(srt)
    assert not [p for p in e.passages if p.source.endswith("field.vtt")]
    again = engine(tmp_path, folder, embedder=FakeEmbedder(), backend=backend.factory)
    assert again.report.embedded_windows == 0 and len(again.report.unchanged) == 3


def test_a_broken_file_is_skipped_and_named(tmp_path, folder, backend):
    (folder / "garbage.txt").write_bytes(b"\x00\x01binary\xff")
    (folder / "prose.md").write_text("No turns here at all.\n", encoding="utf-8")
    logs = []
    e = engine(tmp_path, folder, logs=logs, backend=backend.factory)
    skipped = {s["file"].split("/")[-1] for s in e.report.skipped}
    assert skipped == {"garbage.txt", "prose.md"}
    assert any("garbage.txt" in m for m in logs) and any("prose.md" in m for m in logs)
    assert e.ask("Is NATO a party to this war?").quotes


def test_every_vector_embeds_its_window(tmp_path, folder):
    fake = FakeEmbedder()
    e = engine(tmp_path, folder, embedder=fake)
    texts = [window_text(e.passages, w) for w in e.ranker.windows]
    assert np.allclose(e.vectors, fake.encode(texts), atol=1e-6)


def test_filters_by_source_and_speaker(tmp_path, folder):
    e = engine(tmp_path, folder)
    quotes = e.ask("grapes harvest frost", 3, source="Field recording with Omar Said").quotes
    assert quotes and all(q.source.endswith("field.vtt") for q in quotes)
    question = "moved to Baku for the port project"
    quotes = e.ask(question, 3, source="more/podcast.md", speaker="Lena Berg").quotes
    assert quotes and all(q.speaker == "Lena Berg" and q.source.endswith("podcast.md") for q in quotes)
    quotes = e.ask(question, 3, speaker="Tom Hale").quotes
    assert quotes and all(q.speaker == "Tom Hale" for q in quotes)
    with pytest.raises(QuestionError, match="unknown source"):
        e.ask("x", source="nothing.txt")


@pytest.mark.integration
def test_index_json_through_the_cli(tmp_path, folder, backend):
    def index():
        standin = [sys.executable, "tests/standin.py", "-m", "qa"]  # the real process, a stand-in model
        cmd = [*standin, "index", "--json", "--data", str(folder), *backend.args]
        env = env_for_subprocess(tmp_path)
        r = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, r.stderr
        return json.loads(r.stdout), r.stderr

    first, _ = index()
    assert set(first) >= {
        "added",
        "changed",
        "removed",
        "unchanged",
        "skipped",
        "embedded_windows",
        "windows",
        "sentences",
    }
    assert len(first["added"]) == 3 and first["embedded_windows"] == first["windows"]
    vtt = folder / "more" / "field.vtt"
    vtt.write_text(VTT + "\n4\n00:02:00.000 --> 00:02:03.000\n<v Omar Said>We sell wine in Tbilisi.\n")
    (folder / "junk.txt").write_bytes(b"\x00\x00")
    second, err = index()
    assert second["changed"] == ["more/field.vtt"]
    assert second["embedded_windows"] == rows(vtt.read_text(), "f.vtt")
    assert [s["file"].split("/")[-1] for s in second["skipped"]] == ["junk.txt"] and "junk.txt" in err
    vtt.unlink()
    third, _ = index()
    assert third["removed"] == ["more/field.vtt"] and third["embedded_windows"] == 0
    assert third["windows"] == first["windows"] - rows(VTT, "f.vtt")
