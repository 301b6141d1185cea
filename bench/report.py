"""The targets from the issue, checked against the measurements, and the tables that show both."""

from __future__ import annotations

from typing import Any

from bench.stats import NOISY, caveat, fmt

GB = 10**9

# Targets from the issue.
API_VS_FLOOR = 1.5  # /api/ask p50 <= 1.5x floor p50, at 1x
START_MARGIN_S = 3.0  # cached start-up <= import floor + 3 s
BUILD_VS_ENCODE = 0.8  # build throughput >= 0.8x raw encode
SCALE_100 = 2.0  # /api/ask p50 at 100x <= 2x p50 at 1x
RSS_LIMIT = 1 * GB  # VmHWM of the app at 1x


def checks(results: dict[int, dict]) -> list[dict[str, Any]]:
    out = []

    def check(
        name: str, value: float | None, limit: float | None, ok: bool | None, unit: str, inputs: list[dict]
    ) -> None:
        verdict = "SKIP" if ok is None else ("PASS" if ok else "FAIL")
        out.append({"target": name, "value": value, "limit": limit, "unit": unit, "result": verdict,
                    "caveat": caveat(inputs)})  # fmt: skip

    one = results.get(1)
    if one:
        api, floor = one["query_s"]["api"]["p50"]["median"], one["query_s"]["floor"]["p50"]["median"]
        check(f"/api/ask p50 <= {API_VS_FLOOR}x floor at 1x", api / floor, API_VS_FLOOR,
              api <= API_VS_FLOOR * floor, "x floor",
              [one["query_s"]["api"]["p50"], one["query_s"]["floor"]["p50"]])  # fmt: skip
        start, limit = one["start_cached_s"]["median"], one["import_floor_s"]["median"] + START_MARGIN_S
        check(f"cached start-up <= import floor + {START_MARGIN_S:.0f} s at 1x", start, limit,
              start <= limit, "s", [one["start_cached_s"], one["import_floor_s"]])  # fmt: skip
        rss = one["peak_rss_bytes"]
        check("peak RSS (VmHWM) at 1x <= 1 GB", rss / GB, RSS_LIMIT / GB, rss <= RSS_LIMIT, "GB", [])
    else:
        for name in ("/api/ask p50 vs floor at 1x", "cached start-up at 1x", "peak RSS at 1x"):
            check(name, None, None, None, "", [])
    for size, r in results.items():
        built = r["build"]
        inputs = [built["engine_per_s"], built["raw_encode_per_s"]]
        check(f"build >= {BUILD_VS_ENCODE}x raw encode at {size}x", built["ratio"], BUILD_VS_ENCODE,
              built["ratio"] >= BUILD_VS_ENCODE, "x encode", inputs)  # fmt: skip
    if one and 100 in results:
        a, b = one["query_s"]["api"]["p50"]["median"], results[100]["query_s"]["api"]["p50"]["median"]
        check(f"/api/ask p50 at 100x <= {SCALE_100}x p50 at 1x", b / a, SCALE_100, b <= SCALE_100 * a, "x",
              [one["query_s"]["api"]["p50"], results[100]["query_s"]["api"]["p50"]])  # fmt: skip
    else:
        check(f"/api/ask p50 at 100x <= {SCALE_100}x p50 at 1x", None, None, None, "", [])
    return out


def table(rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths,
             strict=True))) for r in rows]  # fmt: skip
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def report(results: dict[int, dict], targets: list[dict], repeat: int, nq: int) -> str:
    sizes = list(results)
    parts = [f"Medians over runs [min-max]; query figures per run are over {nq} questions, {repeat} runs."]
    rows = [["size", "passages", "floor p50", "floor p95", "Engine.ask p50", "p95", "x floor",
             "/api/ask p50", "p95", "x floor"]]  # fmt: skip
    for s in sizes:
        q = results[s]["query_s"]
        rows.append([f"{s}x", str(results[s]["passages"]), fmt(q["floor"]["p50"], 1000),
                     fmt(q["floor"]["p95"], 1000), fmt(q["engine"]["p50"], 1000),
                     fmt(q["engine"]["p95"], 1000), f"{q['engine']['ratio_p50_to_floor']:.2f}",
                     fmt(q["api"]["p50"], 1000), fmt(q["api"]["p95"], 1000),
                     f"{q['api']['ratio_p50_to_floor']:.2f}"])  # fmt: skip
    parts += ["", "Query latency (ms)", table(rows)]
    rows = [["size", "import floor", "cached", "cached - floor", "no index", "peak RSS MiB"]]
    for s in sizes:
        r = results[s]
        rows.append([f"{s}x", fmt(r["import_floor_s"], digits=2), fmt(r["start_cached_s"], digits=2),
                     f"{r['start_cached_s']['median'] - r['import_floor_s']['median']:+.2f}",
                     fmt(r["start_fresh_s"], digits=2), f"{r['peak_rss_bytes'] / 2**20:.0f}"])  # fmt: skip
    parts += ["", "Start-up to /healthz 200 (s), and the app's VmHWM after the queries", table(rows)]
    rows = [["size", "passages", "raw encode /s", "Engine build /s", "build / encode"]]
    for s in sizes:
        b = results[s]["build"]
        rows.append([f"{s}x", str(results[s]["passages"]), fmt(b["raw_encode_per_s"], digits=0),
                     fmt(b["engine_per_s"], digits=0), f"{b['ratio']:.2f}"])  # fmt: skip
    parts += ["", "Index build throughput (passages/s, model already loaded)", table(rows)]
    rows = [["target", "value", "limit", "result", "caveat"]]
    for t in targets:
        value = "-" if t["value"] is None else f"{t['value']:.2f} {t['unit']}".strip()
        limit = "-" if t["limit"] is None else f"{t['limit']:.2f}"
        rows.append([t["target"], value, limit, t["result"], t["caveat"]])
    parts += ["", "Targets (caveat: a single run, or runs that differ by more than "
              f"{NOISY}x: re-run on a quiet machine before trusting the verdict)", table(rows)]  # fmt: skip
    return "\n".join(parts)
