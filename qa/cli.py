"""`python -m qa ask | eval | calibrate | index | models`: the engine from a terminal.

Errors a user can fix end the program with exit code 2 and one line on stderr.
"""

from __future__ import annotations

import argparse
import json
import sys
import textwrap
from dataclasses import asdict
from pathlib import Path

EXIT_USAGE = 2
MEASURED = Path(__file__).resolve().parent.parent / "embeddings" / "models.json"


def add_data_options(parser: argparse.ArgumentParser, comma_models: bool = False) -> None:
    """--data, --index-dir and --model: declared here once, for the CLI and for app.py."""
    from qa.engine import DEFAULT_DATA, default_index_dir

    parser.add_argument(
        "--data",
        type=Path,
        default=DEFAULT_DATA,
        help="a transcript file or a folder of them (default: %(default)s)",
    )
    parser.add_argument(
        "--index-dir",
        type=Path,
        default=default_index_dir(),
        help="where the index is kept (default: %(default)s, or $QA_INDEX_DIR)",
    )
    more = "; eval and calibrate also take a comma list (minilm,mpnet)" if comma_models else ""
    parser.add_argument("--model", default=None,
                        help=f"minilm (default), mpnet, or a local model folder{more}")  # fmt: skip
    parser.add_argument(
        "--backend",
        choices=("faiss", "qdrant"),
        default="faiss",
        help="where the vectors live: a FAISS folder in --index-dir (default), or Qdrant",
    )
    parser.add_argument(
        "--qdrant-url",
        default=None,
        metavar="URL",
        help="a Qdrant server or cluster (default: $QA_QDRANT_URL); its API key is read "
        "from $QA_QDRANT_API_KEY only",
    )
    parser.add_argument("--qdrant-path", type=Path, default=None, metavar="DIR",
                        help="Qdrant's engine (Qdrant Edge) in this process, its data in DIR "
                             "(default without a URL: INDEX_DIR/qdrant)")  # fmt: skip


def backend_from(args: argparse.Namespace, namespace: str = ""):
    """The Engine's `backend` for --backend and its options: connects to Qdrant now, so that an
    unreachable server is reported at start (BackendUnavailable, an OSError)."""
    import os

    from embeddings import index as store

    url = args.qdrant_url or (os.environ.get("QA_QDRANT_URL") if args.backend == "qdrant" else None)
    if args.backend == "faiss":
        if url or args.qdrant_path:
            raise ValueError("--qdrant-url and --qdrant-path need --backend qdrant")
        return store.FaissFolder
    if url and args.qdrant_path:
        raise ValueError("give --qdrant-url or --qdrant-path, not both")
    if not url:  # Qdrant's engine in this process (embeddings/edge.py)
        from embeddings import edge

        folder = edge.connect(args.qdrant_path or args.index_dir / "qdrant")
        return lambda _index_dir, model: edge.EdgeStore(folder, model, namespace)
    from embeddings.qdrant import QdrantStore, connect

    client = connect(url, None, os.environ.get("QA_QDRANT_API_KEY") or None)
    return lambda _index_dir, model: QdrantStore(client, model, url, namespace)


def _suite(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--suite", type=Path, action="append",
                        help="a folder of eval sets, each over its own transcript (repeatable; "
                             "default: ../shared/eval if present, and eval/)")  # fmt: skip


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m qa", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)

    ask = sub.add_parser("ask", help="answer a question with quotes from the interview")
    ask.add_argument("question", nargs="?", help="the question; without it, read stdin lines")
    ask.add_argument("--k", default=3, help="how many quotes (1-20, default 3)")
    ask.add_argument("--json", action="store_true", help="print the answer object as JSON")
    ask.add_argument("--source", help="only quote this transcript")
    ask.add_argument("--speaker", help="only quote this speaker")
    add_data_options(ask)

    ev = sub.add_parser("eval", help="hit@1/hit@3/MRR and refusal rates against baselines")
    ev.add_argument(
        "questions",
        type=Path,
        nargs="?",
        help="JSONL with question and gold; without it, every set of --suite",
    )
    _suite(ev)
    ev.add_argument("--disliked", type=Path, help="the chat's feedback JSONL: recheck disliked answers")
    ev.add_argument("--oos", type=Path, help="JSONL of questions the interview does not answer")
    ev.add_argument("--k", type=int, default=3)
    ev.add_argument("--json", action="store_true")
    add_data_options(ev, comma_models=True)

    cal = sub.add_parser(
        "calibrate", help="fit the verdict (answer, unsure, refuse) for a model on every eval set"
    )
    _suite(cal)
    cal.add_argument("--write", nargs="?", const="", default=None, metavar="PATH",
                     help="store it where the app reads it first: INDEX_DIR/calibration.json, or PATH "
                          "(qa/calibration.json is the one shipped with the code)")  # fmt: skip
    add_data_options(cal, comma_models=True)

    idx = sub.add_parser("index", help="build or update the index and say what changed")
    idx.add_argument("--json", action="store_true")
    add_data_options(idx)

    mod = sub.add_parser("models", help="the named models: installed, verified, size, measured figures")
    mod.add_argument("--json", action="store_true")
    return p


def model_names(value: str | None) -> list[str | None]:
    """`--model` as a list: a comma list compares models, unless it names an existing folder."""
    if value is None or "," not in value or Path(value).expanduser().exists():
        return [value]
    return [name.strip() for name in value.split(",") if name.strip()]


def _engine(args: argparse.Namespace, progress: bool = True):
    """The engine over --data and the transcripts added from the page, as the app sees them."""
    from qa.engine import Engine
    from qa.uploads import default_folder

    return Engine(args.data, args.index_dir, args.model, progress=progress,
                  backend=backend_from(args), uploads=default_folder(args.index_dir))  # fmt: skip


def terminal_text(answer) -> str:
    """An answer as a person reads it in a terminal."""
    from qa.render import REFUSAL, UNSURE

    if not answer.answered and answer.quotes:
        return "\n\n".join([UNSURE, *(_terminal_quote(q, n) for n, q in enumerate(answer.quotes, 1))])
    if not answer.answered:
        out = [REFUSAL]
        if answer.closest:
            out += ["The closest quote, which is not an answer:", _terminal_quote(answer.closest, None)]
        return "\n".join(out)
    return "\n\n".join(_terminal_quote(q, n) for n, q in enumerate(answer.quotes, 1))


def _terminal_quote(q, n: int | None) -> str:
    from qa.render import citation

    head = f"{n}. " if n else ""
    body = textwrap.fill(q.text, 96, initial_indent="   > ", subsequent_indent="   > ")
    lines = [f"{head}[score {q.score:.3f}]", body, f"   — {citation(q)}"]
    if q.asked:
        lines.append("   In reply to: " + textwrap.shorten(q.asked, 200))
    return "\n".join(lines)


def _batch(engine, args) -> int:
    from qa.engine import QuestionError, question_error

    for line in sys.stdin:
        if not line.strip():
            continue
        question = line.strip()
        if question.startswith("{"):
            try:
                obj = json.loads(question)
                question = obj["question"] if isinstance(obj, dict) else question
                history = obj.get("history") or [] if isinstance(obj, dict) else []
            except (ValueError, KeyError, AttributeError):
                error = question_error(question, "line is not JSON with a 'question' key")
                print(json.dumps(error, ensure_ascii=False), flush=True)
                continue
        else:
            history = []
        try:
            if not isinstance(history, list):
                raise QuestionError("history must be a list of earlier questions")
            result = engine.ask(question, args.k, args.source, args.speaker, history).to_dict()
        except QuestionError as e:
            result = question_error(question, e)
        print(json.dumps(result, ensure_ascii=False), flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    from embeddings.model import offline

    offline()
    args = parser().parse_args(argv)
    from embeddings.model import ModelError
    from qa.engine import QuestionError, check_k, clean_question
    from qa.transcript import TranscriptError

    try:
        if args.command == "models":
            return _models(args)
        if args.command in ("ask", "index") and len(model_names(args.model)) > 1:
            raise ValueError("--model takes one model here; a comma list is for eval and calibrate")
        if args.command == "ask":
            check_k(args.k)
            if args.question is not None:
                clean_question(args.question)
            engine = _engine(args, progress=not args.json and args.question is not None)
            if args.question is None:
                return _batch(engine, args)
            answer = engine.ask(args.question, args.k, args.source, args.speaker)
            print(json.dumps(answer.to_dict(), ensure_ascii=False, indent=1)
                  if args.json else terminal_text(answer))  # fmt: skip
        elif args.command == "index":
            engine = _engine(args, progress=not args.json)
            report = asdict(engine.report)
            if args.json:
                print(json.dumps(report, ensure_ascii=False))
            else:
                for key in ("added", "changed", "removed", "unchanged"):
                    print(f"{key:10} {len(report[key])}")
                print(f"index: {engine.report.line()}")
        elif args.command in ("eval", "calibrate"):
            return _eval(args)
    except (TranscriptError, ModelError, QuestionError, OSError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130
    return 0


def _suites(args: argparse.Namespace) -> list:
    from qa import evaluate as ev

    root = Path(__file__).resolve().parent.parent
    folders = args.suite or [f for f in (root.parent / "shared" / "eval", root / "eval") if f.is_dir()]
    sets = [s for folder in folders for s in ev.discover(folder, args.data)]
    if not sets:
        raise ValueError("no eval sets found: give a questions file or --suite FOLDER")
    return sets


def _suite_engines(args: argparse.Namespace, name: str | None, sets: list):
    """One engine per transcript of the suite, each with an index folder of its own."""
    import hashlib

    from qa.engine import Engine

    engines = {}
    for s in sets:
        key = str(Path(s.data).resolve())
        if key not in engines:
            slug = hashlib.sha256(key.encode()).hexdigest()[:12]
            engines[key] = Engine(s.data, args.index_dir / "eval" / slug, name, progress=False,
                                  log=lambda m: None, backend=backend_from(args, f"eval-{slug}"))  # fmt: skip
    return lambda s: engines[str(Path(s.data).resolve())]


def _eval(args: argparse.Namespace) -> int:
    from qa import evaluate as ev

    disliked = getattr(args, "disliked", None)
    names, rows = model_names(args.model), []
    if args.command == "calibrate" or (args.questions is None and not disliked):
        return _eval_suites(args, names)
    questions = ev.read_jsonl(args.questions) if args.questions else []
    off_topic = ev.read_jsonl(args.oos) if args.oos else []
    for n, name in enumerate(names):  # one model in memory at a time
        engine = _engine(argparse.Namespace(**{**vars(args), "model": name}), progress=False)
        if disliked:
            from qa.feedback import disliked_cases, recheck

            checked = recheck(engine, disliked_cases(disliked))
            still = sum(bool(c.get("still_disliked")) for c in checked)
            print(f"{len(checked)} disliked answers; {still} still give the disliked quote first")
            for c in checked:
                mark = "same" if c.get("still_disliked") else "changed"
                print(f"  [{mark}] {c['question']}")
            if not questions:
                continue
        scores = ev.evaluate(engine, questions, off_topic, args.k)
        for s in scores:
            s.set = args.questions.stem
        rows += [{"model": engine.model_name, **asdict(s)} for s in scores]
        if not args.json:
            print(f"{len(questions)} questions, {len(off_topic)} off-topic, k={args.k}, "
                  f"model {engine.model_name}")  # fmt: skip
            # One set: the retriever leads each row, as the set is named above the table.
            table = ev.table([s.row()[2:] for s in scores], ev.HEADER[2:])
            print(table + ("\n" if n < len(names) - 1 else ""))
    if args.json:
        print(json.dumps(rows, indent=1))
    return 0


def _eval_suites(args: argparse.Namespace, names: list) -> int:
    """Every set of the suites, qa beside both baselines; sets of one folder also pooled."""
    from qa import evaluate as ev
    from qa.engine import LOCAL_CALIBRATION

    sets, rows = _suites(args), []
    for n, name in enumerate(names):
        engine_of = _suite_engines(args, name, sets)
        model = engine_of(sets[0]).model_name
        if args.command == "calibrate":
            judged = ev.judge_suite([(s.name, engine_of(s), s.questions, s.off_topic) for s in sets])
            fit = ev.fit_verdict(judged)
            print(json.dumps({model: fit}, indent=1))
            _print_verdict_folds(judged)
            if args.write is not None:
                path = Path(args.write or args.index_dir / LOCAL_CALIBRATION)
                table = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
                table[model] = fit
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(json.dumps(table, indent=1, sort_keys=True) + "\n", encoding="utf-8")
                print(f"written to {path}", file=sys.stderr)
            continue
        table, groups = [], {}
        for s in sets:
            scores = ev.evaluate(engine_of(s), s.questions, s.off_topic, args.k)
            for x in scores:
                x.set = s.name
            groups.setdefault(ev.group(s.name), []).append(scores)
            table += scores
        for g, parts in groups.items():
            if len(parts) > 1:
                table += ev.pooled(parts, f"{g} (all {len(parts)})")
        rows += [{"model": model, **asdict(s)} for s in table]
        if not args.json:
            print(f"model {model}, k={args.k}; refused: share of plainly off-topic questions refused")
            print(ev.table([s.row() for s in table], ev.HEADER) + ("\n" if n < len(names) - 1 else ""))
    if args.command == "eval" and args.json:
        print(json.dumps(rows, indent=1))
    return 0


def _print_verdict_folds(judged: list) -> None:
    """Each set's verdict figures under a fit made without it, and the answered/precision curve."""
    from qa import evaluate as ev

    pct = lambda x: "-" if x is None else f"{x:.2f}"  # noqa: E731
    rows = [[name, *(pct(v) for v in f.values())] for name, f in ev.cross_validate(judged).items()]
    header = [
        "held-out set",
        "answered",
        "hit@1 answered",
        "near not answered",
        "near refused",
        "plain refused",
    ]
    print("\nEach set under a fit made without it:", file=sys.stderr)
    print(ev.table(rows, header), file=sys.stderr)
    curve = ev.held_out_curve(judged, [1.0, 0.98, 0.95, 0.92, 0.9, 0.85, 0.8, 0.7, 0.6, 0.5])
    print("\nHeld out, pooled: answered / hit@1 among answered / near misses not answered:", file=sys.stderr)
    print(ev.table([[f"{a:.2f}", f"{h:.2f}", f"{n:.2f}"] for a, h, n in curve],
                   ["answered", "hit@1 answered", "near not answered"]), file=sys.stderr)  # fmt: skip


def _models(args: argparse.Namespace) -> int:
    """The named models, what is installed, and their measured figures (embeddings/models.json)."""
    from embeddings.model import KNOWN_MODELS, status
    from qa.evaluate import table

    figures = json.loads(MEASURED.read_text(encoding="utf-8"))
    found = [{**asdict(status(m)), "measured": figures.get(m.name, {})} for m in KNOWN_MODELS.values()]
    if args.json:
        print(json.dumps(found, indent=1))
        return 0
    header = ["model", "installed", "verified", "disk MB", "dim", "public hit@1", "MRR", "dev hit@1",
              "MRR", "query p50 ms", "build sentences/s"]  # fmt: skip
    rows = []
    for m in found:
        f = m["measured"]
        verified = {True: "yes", False: "no", None: "first use"}[m["verified"]]
        rows.append([m["name"], "yes" if m["installed"] else "no", verified, f"{m['disk_bytes'] / 1e6:.0f}",
                     _figure(f, "dim"), _figure(f, "public.hit@1", ".2f"), _figure(f, "public.MRR", ".2f"),
                     _figure(f, "dev.hit@1", ".2f"), _figure(f, "dev.MRR", ".2f"), _figure(f, "query_p50_ms"),
                     _figure(f, "build_sentences_per_s")])  # fmt: skip
    print(table(rows, header))
    for m in found:
        if m["note"]:
            print(f"{m['name']} ({m['upstream']}): {m['note']}")
    if "_how" in figures:
        print(f"measured: {figures['_how']}")
    return 0


def _figure(measured: dict, path: str, spec: str = "") -> str:
    """A measured figure ('public.hit@1') as table text; '-' when the model was never measured."""
    value = measured
    for key in path.split("."):
        value = value.get(key) if isinstance(value, dict) else None
    return "-" if value is None else format(value, spec)
