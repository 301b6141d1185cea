"""Benches: each is one script, run by hand, whose figures fill a table of the README.

    bench.py      latency, start-up, build throughput, memory by size   README "Speed"
    backends.py   the FAISS folder against Qdrant by size                README "Scale, measured"
    load.py       clients on /api/ask and the chat of a running app      README "Run the tests"
    models.py     minilm against mpnet: quality, latency, build          embeddings/models.json
    tune.py       the ranking settings, leaving one eval set out         README "How the settings ..."
    long_talk.py  one speaker for hundreds of KB: index time and memory  (tests/test_hostile_files.py)

corpus.py (synthetic transcripts N times the interview) and stats.py (percentiles, spreads) are
what two benches share. An experiment whose decision is taken leaves the tree once its figures
are in the README (bench/lexical.py: BM25 stored as Qdrant sparse vectors, in git history).
"""
