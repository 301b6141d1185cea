"""Run app.py or `python -m qa` as a real process with the stand-in embedder in place of the model.

    python tests/standin.py app.py --port 7861 --data DIR
    python tests/standin.py -m qa index --json --data DIR

For tests of everything but the model (scale, folder bookkeeping, faults): the process, its
flags, files, index and routes are the real ones; only `qa.engine.Embedder` is conftest's
FakeEmbedder at the model's 384 dimensions, so embedding 10,000 windows takes seconds, not minutes.
"""

import runpy
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from conftest import STANDIN, FakeEmbedder  # noqa: E402

import qa.engine  # noqa: E402

qa.engine.Embedder = lambda model=None: FakeEmbedder(STANDIN, dim=384)

if __name__ == "__main__":
    if sys.argv[1] == "-m":
        sys.argv = [sys.argv[2], *sys.argv[3:]]
        runpy.run_module(sys.argv[0], run_name="__main__", alter_sys=True)
    else:
        sys.argv = sys.argv[1:]
        runpy.run_path(sys.argv[0], run_name="__main__")
