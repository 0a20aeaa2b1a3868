"""The benchmark's report: the figures table, PNG plots, and the results block of
docs/benchmarks.md (between the `results:start` and `results:end` markers)."""

from __future__ import annotations

import importlib.util
import logging
import math
import shutil
from collections import defaultdict
from pathlib import Path
from typing import Any

from bench import model

log = logging.getLogger(__name__)

START = "<!-- results:start (written by python -m bench.launch; do not edit) -->"
END = "<!-- results:end -->"
PLOTS = ("bench-rush.png", "bench-latency.png", "bench-backend.png", "bench-ceiling.png")


def _yes(ok: bool) -> str:
    return "met" if ok else "**missed**"


def _ms(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{value:.1f} ms"


def booking_errors(errors: dict[str, int]) -> int:
    """What went wrong for visitors while booking: 5xx, timeouts, connection errors and
    unexpected answers from the backend, a code never delivered (a 409 for a pair someone
    else held first is the backend working, and not counted)."""
    return sum(n for kind, n in errors.items() if kind.startswith("book_"))


def oversold_by(backend: dict[str, Any]) -> int:
    """Slot units booked or held beyond the capacity, from the backend's own counts."""
    counts: dict[str, int] = backend["counts"]
    return max(0, counts["booked"] + counts["held"] - counts["capacity"])


def summary_table(results: dict[str, Any]) -> str:
    rows = ["| # | Figure | Measured (this run) | Target | |", "|---|---|---|---|---|"]
    if "ceiling" in results:
        c = results["ceiling"]
        med = c["median_rps"]
        rows.append(
            f"| 1 | Status polls/s, one gate process vs bare aiohttp JSON handler | "
            f"{c['status_ratio_median']:.0%} ({med['gate_status']:.0f} vs "
            f"{med['bare_json']:.0f} req/s, median of {len(c['status_ratios'])} interleaved "
            f"runs) | >= 70% | {_yes(c['status_ratio_median'] >= 0.7)} |")
        rows.append(
            f"| 1 | Joins/s, one gate process vs bare handler with one Redis round trip | "
            f"{c['join_ratio_median']:.0%} ({med['gate_join']:.0f} vs "
            f"{med['bare_redis']:.0f} req/s) | >= 80% | {_yes(c['join_ratio_median'] >= 0.8)} |")
    if "rush" in results:
        r = results["rush"]
        spec = r["spec"]
        errors = ", ".join(f"{k}: {v}" for k, v in sorted(r["errors"].items())) or "none"
        rows.append(
            f"| 2 | Errors (5xx, reset, timeout) during the rush of {spec['visitors']:,} "
            f"visitors in {spec['arrival_s']:.0f} s | {r['error_total']} ({errors}) | 0 | "
            f"{_yes(r['error_total'] == 0)} |")
        rows.append(
            f"| 3 | Latency under the rush: join p50 / p99; status p50 / p99 | "
            f"{_ms(r['join_p50_ms'])} / {_ms(r['join_p99_ms'])}; {_ms(r['status_p50_ms'])} / "
            f"{_ms(r['status_p99_ms'])} ({r['joins']:,} joins, {r['status_polls']:,} polls) "
            f"| (status p99 < 100 ms, see 8) | {_yes(r['status_p99_ms'] < 100)} |")
    if "rate" in results:
        parts = []
        ok = True
        for count, rate in results["rate"].items():
            parts.append(f"{count} gate(s): {rate['measured_per_minute']:.1f} "
                         f"({rate['error_pct']:+.2f}%)")
            ok = ok and abs(rate["error_pct"]) <= 1 and rate["min_waiting"] > 0
        configured = next(iter(results["rate"].values()))["configured"]
        rows.append(f"| 4 | Admitted per minute vs configured {configured}/min, backlog "
                    f"always present | {'; '.join(parts)} | within 1% | {_yes(ok)} |")
    if "rush" in results:
        r = results["rush"]
        rows.append(
            f"| 5 | Admissions out of ticket order (same gate process; any process) | "
            f"{r['order_violations_same_gate']}; {r['order_violations_any_gate']} of "
            f"{r['order_checked']:,} admitted | 0 | "
            f"{_yes(r['order_violations_same_gate'] == 0)} |")
        w, d = r["backend_with_gate"], r["backend_direct"]
        dr = r["direct"]
        with_errors = booking_errors(r["errors"])
        direct_errors = booking_errors(dr["errors"])
        rows.append(
            f"| 6 | Booking backend: peak requests in flight (sampled 5/s) / failed "
            f"bookings (5xx, timeout, unexpected answer) / API call p99 / bookings, with "
            f"the gate vs the same rush straight at it | {w['peak_in_flight']:.0f} / "
            f"{with_errors:,} / "
            f"{_ms(r['backend_p99_ms'])} / {r['bookings_ok']:,} vs {d['peak_in_flight']:.0f} / "
            f"{direct_errors:,} / {_ms(dr['backend_p99_ms'])} / {dr['bookings_ok']:,} | "
            f"bounded, 0 failed with the gate | "
            f"{_yes(with_errors == 0 and w['peak_in_flight'] <= r['backend_connections'])} |")
        oversold = [oversold_by(run) for run in (w, d)]
        rows.append(
            f"| 6 | Never oversold: booked units beyond capacity; bookings stored vs confirmed "
            f"to visitors (with gate; direct) | {oversold[0]}, {w['counts']['bookings']:,} vs "
            f"{r['bookings_ok']:,}; {oversold[1]}, {d['counts']['bookings']:,} vs "
            f"{dr['bookings_ok']:,} | 0 | {_yes(oversold == [0, 0])} |")
        rows.append(
            f"| 7 | Redis commands per visitor (all commands incl. ticks and script-internal "
            f"calls; scripts) | {r['redis_calls_per_visitor']:.1f}; "
            f"{r['redis_scripts_per_visitor']:.2f} EVALSHA | - | |")
    if "scale" in results:
        s = results["scale"]
        # From the measured capacity with the gate's current poll schedule (bench/model.py),
        # so a re-rendered report follows a changed default.
        s["polls_needed_for_500k"] = model.polls_per_second(500_000, s["rate_per_minute"])
        s["population_sustained"] = model.population_for(s["sustained_polls_per_s"],
                                                         s["rate_per_minute"])
        rows.append(
            f"| 7 | Redis memory per waiting visitor | {s['bytes_per_waiting']:.2f} bytes "
            f"({s['memory_delta_bytes']:,} bytes for {s['waiting']:,} waiting) | <= 150 bytes "
            f"| {_yes(s['bytes_per_waiting'] <= 150)} |")
        rows.append(
            f"| 8 | Waiting visitors held: joined with 0 errors; status polls/s sustained "
            f"(p99 < 100 ms, 0 errors, {s['gates']} gate processes); population those polls "
            f"carry at {s['rate_per_minute']}/min | {s['waiting']:,} (join errors "
            f"{s['join_errors']}); {s['sustained_polls_per_s']:.0f}/s; "
            f"{s['population_sustained']:,} (500k needs {s['polls_needed_for_500k']:.0f}/s) "
            f"| 500,000 | {_yes(s['population_sustained'] >= 500_000 and s['join_errors'] == 0)}"
            f" |")
    generator = []
    if "rush" in results:
        r = results["rush"]
        generator.append(f"rush generator {r['generator_cpu_s']:.0f} CPU s over "
                         f"{r['generator_wall_s']:.0f} s wall "
                         f"({r['generator_cpu_s'] / r['generator_wall_s']:.0%} of one core, "
                         f"{results['config']['rush_workers']} processes); gates "
                         f"{r['gate_cpu_s']:.0f} CPU s; redis {r['redis_cpu_s']:.0f} CPU s")
    if "ceiling" in results:
        generator.append(f"wrk median {results['ceiling']['wrk_cpu_share']:.0%} of one core "
                         f"in the ceiling runs")
    table = "\n".join(rows)
    if generator:
        table += "\n\nLoad generator's own CPU: " + "; ".join(generator) + "."
    return table + "\n"


def _per_second(times: list[float], width: float = 1.0) -> tuple[list[float], list[float]]:
    counts: dict[int, int] = defaultdict(int)
    for t in times:
        counts[int(t // width)] += 1
    if not counts:
        return [], []
    keys = range(min(counts), max(counts) + 1)
    return [k * width for k in keys], [counts.get(k, 0) / width for k in keys]


def _binned_percentiles(points: list[list[float]], width: float,
                        q: float) -> tuple[list[float], list[float]]:
    bins: dict[int, list[float]] = defaultdict(list)
    for t, lat in points:
        bins[int(t // width)].append(lat)
    xs, ys = [], []
    for key in sorted(bins):
        values = sorted(bins[key])
        xs.append(key * width)
        ys.append(values[min(int(q / 100 * len(values)), len(values) - 1)])
    return xs, ys


def have_matplotlib() -> bool:
    return importlib.util.find_spec("matplotlib") is not None


def plots(results: dict[str, Any], workdir: Path) -> None:
    """Draw the PNGs; without matplotlib (the `bench` extra) say so and draw nothing."""
    if not have_matplotlib():
        log.warning("matplotlib is not installed (pip install -e '.[bench]'): no plots")
        return
    # Optional (the `bench` extra): the ignore keeps mypy quiet where it is not installed.
    import matplotlib  # type: ignore[import-not-found,unused-ignore]

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # type: ignore[import-not-found,unused-ignore]

    if "rush" in results:
        r = results["rush"]
        series = r["series"]
        fig, ax = plt.subplots(figsize=(9, 4.5))
        xs, ys = _per_second(series["arrivals"])
        ax.plot(xs, ys, label="arrivals (joins answered) /s", color="tab:blue", lw=1)
        xs, ys = _per_second(series["admissions"])
        ax.plot(xs, ys, label="admissions collected /s", color="tab:green", lw=1)
        ax.set_xlabel("seconds since the room opened")
        ax.set_ylabel("visitors per second")
        depth = ax.twinx()
        depth.plot([s["t"] for s in r["samples"]], [s["waiting"] for s in r["samples"]],
                   color="tab:red", label="queue depth (waiting, admin API)")
        depth.set_ylabel("visitors waiting")
        lines = ax.get_legend_handles_labels()
        more = depth.get_legend_handles_labels()
        ax.legend(lines[0] + more[0], lines[1] + more[1], loc="upper right", fontsize=8)
        ax.set_title(f"Launch rush: {r['spec']['visitors']:,} visitors in "
                     f"{r['spec']['arrival_s']:.0f} s, "
                     f"{results['config']['rush_rate_per_minute']}/min admitted")
        fig.tight_layout()
        fig.savefig(workdir / "bench-rush.png", dpi=100)
        plt.close(fig)

        fig, ax = plt.subplots(figsize=(9, 4.5))
        for key, label, color in (("join_lat", "join", "tab:blue"),
                                  ("status_lat", "status", "tab:orange")):
            for q, style in ((50, "-"), (99, "--")):
                xs, ys = _binned_percentiles(series[key], 5.0, q)
                ax.plot(xs, ys, style, color=color, label=f"{label} p{q}")
        ax.axhline(100, color="grey", lw=0.8, ls=":", label="100 ms")
        ax.set_yscale("log")
        ax.set_xlabel("seconds since the room opened (5 s bins, by request start)")
        ax.set_ylabel("latency, ms (log)")
        ax.legend(fontsize=8)
        ax.set_title("Latency under the rush, as the visitors' client saw it")
        fig.tight_layout()
        fig.savefig(workdir / "bench-latency.png", dpi=100)
        plt.close(fig)

        fig, (load, lat) = plt.subplots(1, 2, figsize=(11, 4.2))
        runs = (("backend_with_gate", "with the gate", "tab:green"),
                ("backend_direct", "straight at it", "tab:red"))
        for key, label, color in runs:
            points = r[key]["in_flight"]
            load.plot([t for t, _ in points], [v for _, v in points], color=color,
                      lw=1, label=label)
        load.set_xlabel("seconds since the run started")
        load.set_ylabel("requests in flight at the backend")
        load.set_title("Load reaching the booking backend")
        load.legend(fontsize=8)
        for key, label, color in (("backend_lat", "with the gate", "tab:green"),
                                  ("direct_backend_lat", "straight at it", "tab:red")):
            if key in series:
                for q, style in ((50, "-"), (99, "--")):
                    xs, ys = _binned_percentiles(series[key], 5.0, q)
                    lat.plot(xs, ys, style, color=color, label=f"{label} p{q}")
        lat.set_yscale("log")
        lat.set_xlabel("seconds since the run started (5 s bins)")
        lat.set_ylabel("booking API call latency, ms (log)")
        lat.set_title("Booking calls as the visitors saw them")
        lat.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(workdir / "bench-backend.png", dpi=100)
        plt.close(fig)
    if "ceiling" in results:
        c = results["ceiling"]
        names = ["bare_json", "gate_status", "bare_redis", "gate_join"]
        labels = ["bare JSON", "gate status", "bare + 1 Redis RTT", "gate join"]
        fig, ax = plt.subplots(figsize=(7, 4))
        values = [c["median_rps"][n] for n in names]
        ax.bar(labels, values, color=["grey", "tab:orange", "grey", "tab:blue"])
        for i, v in enumerate(values):
            ax.text(i, v, f"{v:.0f}", ha="center", va="bottom")
        ax.set_ylabel("requests per second (median)")
        ax.set_title("One process on one core, wrk on the other")
        fig.tight_layout()
        fig.savefig(workdir / "bench-ceiling.png", dpi=100)
        plt.close(fig)


def results_block(results: dict[str, Any]) -> str:
    lines = [
        START,
        "",
        f"Command: `.venv/bin/{results['command']}`, started {results['started_utc']}, "
        f"wall time {results['wall_s'] / 60:.1f} min, {results['machine']['cpus']} cores, "
        f"Python {results['machine']['python']}, load average at start "
        f"{results['machine']['load_avg_at_start'][0]:.2f}. Gate measured: "
        f"{results.get('gate', '?')}. Backend: {results['backend']}.",
        "",
        summary_table(results),
    ]
    if "ceiling" in results:
        c = results["ceiling"]
        lines += ["", f"Ceiling runs (req/s, {c['connections']} connections, in run order):", ""]
        lines.append("| case | req/s per run | median p99 |")
        lines.append("|---|---|---|")
        for name, runs in c["runs"].items():
            per_run = ", ".join(f"{r['rps']:.0f}" for r in runs)
            lines.append(f"| {name} | {per_run} | "
                         f"{c['median_p99_ms'][name]:.1f} ms |")
    if "rate" in results:
        lines += ["", "| gate processes | admitted/min (regression) | endpoints | interval "
                  "| smallest backlog |", "|---|---|---|---|---|"]
        for count, rate in results["rate"].items():
            lines.append(f"| {count} | {rate['measured_per_minute']:.1f} | "
                         f"{rate['endpoints_per_minute']:.1f} | {rate['interval_s']:.0f} s | "
                         f"{rate['min_waiting']:,} |")
    if "rush" in results:
        r = results["rush"]
        lines += ["", f"Rush: {r['joins']:,} joined, {r['admitted']:,} admitted, "
                  f"{r['bookings_ok']:,} booked through the gate, {r['left']:,} left while "
                  f"waiting, {r['still_waiting']:,} still waiting when the replay stopped "
                  f"(peak queue {r['peak_waiting']:,}). Straight at the backend: "
                  f"{r['direct']['bookings_ok']:,} booked, errors "
                  f"{r['direct']['errors'] or 'none'}.",
                  "", "Redis calls during the rush: " + ", ".join(
                      f"{cmd} {n:,}" for cmd, n in sorted(r["redis_calls"].items(),
                                                          key=lambda kv: -kv[1])) + "."]
    if "scale" in results:
        s = results["scale"]
        lines += ["", f"Scale: {s['waiting']:,} waiting after joins at {s['join_rps']:.0f}/s "
                  f"(p99 {s['join_p99_ms']:.0f} ms). Status polls against {s['gates']} gate "
                  "processes:", "", "| connections | polls/s | p50 | p99 | errors | gate CPU "
                  "| wrk CPU |", "|---|---|---|---|---|---|---|"]
        for run in s["status_runs"]:
            lines.append(f"| {run['connections']} | {run['rps']:.0f} | {run['p50_ms']:.1f} ms "
                         f"| {run['p99_ms']:.1f} ms | {run['errors']} | "
                         f"{run['gate_cpu_share']:.0%} | {run['wrk_cpu_share']:.0%} |")
    lines += ["", "![queue depth, arrivals and admissions](img/bench-rush.png)",
              "![latency percentiles](img/bench-latency.png)",
              "![load at the booking backend, with and without the gate]"
              "(img/bench-backend.png)",
              "![ceiling](img/bench-ceiling.png)", "", END]
    return "\n".join(lines)


def write_docs(results: dict[str, Any], workdir: Path, root: Path) -> None:
    doc = root / "docs" / "benchmarks.md"
    text = doc.read_text() if doc.exists() else f"# Benchmarks\n\n{START}\n{END}\n"
    head, _, rest = text.partition(START)
    _, _, tail = rest.partition(END)
    doc.write_text(head + results_block(results) + tail)
    (root / "docs" / "img").mkdir(parents=True, exist_ok=True)
    for name in PLOTS:
        if (workdir / name).exists():
            shutil.copy(workdir / name, root / "docs" / "img" / name)
