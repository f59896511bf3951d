"""`rnnlab report SEARCH_DIR`: a finished (or running) search as one self-contained HTML file and a markdown summary.

Both hold the best trials, the learning curves of the top trials, Optuna's plots, a comparison across model families
(best, mean and spread, a 95% t-interval, parameters, wall time, and whether the best two differ beyond noise) and
the failed and pruned trials with their reasons. Figures (`report_figures.py`) are PNGs beside `report.md`, embedded
in `report.html` as data URIs. A plot that cannot be drawn for this search becomes a line in the report, never a crash.
"""

from __future__ import annotations

import base64
import html
import json
import math
import statistics
from pathlib import Path
from typing import Any

from rnnlab import search_folder as sf
from rnnlab.checkpoint import atomic_write_bytes
from rnnlab.report_figures import PLOTS, plot_families, plot_learning_curves, plot_optuna
from rnnlab.search_report import TOP_TRIALS, best_overrides, format_value

REPORT_DIR = "report"
TOP_FOR_CI = 3  # without seed replicates, a family's interval is over its best trials
ALPHA = 0.05


# --- what the search holds -------------------------------------------------------------------------------------


def collect_trials(spec: sf.SearchSpec, study) -> list[dict[str, Any]]:
    """trial_rows (best first) with what the trial folder adds: parameter count, seeds' values, reason."""
    rows = sf.trial_rows(spec, study)
    for row in rows:
        folder = sf.trial_folder(spec, row["trial_id"])
        result = sf.read_json(folder / "result.json")
        value = row["values"][0] if row["values"] else math.nan
        row["value"] = float(value) if value is not None else math.nan
        row["parameters"] = result.get("parameters")
        row["seed_values"] = [v for v in result.get(f"seeds/{spec.metric}", []) if isinstance(v, (int, float))]
        row["std"] = result.get(f"{spec.metric}_std")
        row["reason"] = row["reason"] or result.get("status", row["state"].lower())
    return rows


def t_interval(values: list[float]) -> tuple[float, float] | None:
    """The 95% Student-t interval of the mean, or None with fewer than two values."""
    from scipy import stats

    if len(values) < 2:
        return None
    mean, sem = statistics.fmean(values), statistics.stdev(values) / math.sqrt(len(values))
    half = stats.t.ppf(1 - ALPHA / 2, len(values) - 1) * sem
    return mean - half, mean + half


def family_stats(rows: list[dict[str, Any]], mode: str) -> list[dict[str, Any]]:
    """Per family: counts, best, mean and spread over completed trials, a 95% CI, parameters and time per trial."""
    better = max if mode == "max" else min
    stats = []
    for family in dict.fromkeys(r["family"] for r in rows):
        mine = [r for r in rows if r["family"] == family]
        done = [r for r in mine if r["state"] == "COMPLETE" and math.isfinite(r["value"])]
        best = better(done, key=lambda r: r["value"]) if done else None
        if best is not None and len(best["seed_values"]) > 1:
            sample, source = best["seed_values"], f"{len(best['seed_values'])} seeds of the best config"
        else:
            top = sorted(done, key=lambda r: r["value"], reverse=mode == "max")[:TOP_FOR_CI]
            sample, source = [r["value"] for r in top], f"top {len(top)} trials"
        values = [r["value"] for r in done]
        times = [r["time"] for r in mine if r["time"]]
        stats.append(
            {
                "family": family,
                "trials": len(mine),
                "complete": len(done),
                "pruned": sum(r["state"] == "PRUNED" for r in mine),
                "failed": sum(r["state"] == "FAIL" for r in mine),
                "best": best["value"] if best else math.nan,
                "best_trial": best["trial_id"] if best else "-",
                "mean": statistics.fmean(values) if values else math.nan,
                "std": statistics.stdev(values) if len(values) > 1 else math.nan,
                "sample": sample,
                "ci": t_interval(sample),
                "ci_source": source,
                "parameters": best["parameters"] if best else None,
                "time_per_trial": statistics.fmean(times) if times else math.nan,
            }
        )
    return sorted(stats, key=lambda s: (not math.isfinite(s["best"]), -s["best"] if mode == "max" else s["best"]))


def noise_verdict(stats: list[dict[str, Any]]) -> str:
    """Whether the best two families differ beyond noise: a Welch t-test (p > 0.05: within noise), CIs alongside."""
    ranked = [s for s in stats if math.isfinite(s["best"])]
    if len(ranked) < 2:
        return "Only one family has a completed trial: no comparison across families."
    a, b = ranked[:2]
    if len(a["sample"]) < 2 or len(b["sample"]) < 2:
        return (
            f"{a['family']} vs {b['family']}: cannot tell whether the difference is beyond noise; it needs at "
            f"least 2 values per family (more completed trials, or search.seeds >= 2)."
        )
    from scipy import stats as scipy_stats

    p = float(scipy_stats.ttest_ind(a["sample"], b["sample"], equal_var=False).pvalue)
    overlap = a["ci"][0] <= b["ci"][1] and b["ci"][0] <= a["ci"][1]
    cis = f"95% CIs {'overlap' if overlap else 'do not overlap'}"
    if not math.isfinite(p):
        return f"{a['family']} vs {b['family']}: Welch t-test undefined (no spread in either sample); {cis}."
    if p > ALPHA:
        return (
            f"{a['family']} vs {b['family']}: the difference is within noise (Welch t-test over the CI samples, "
            f"p = {p:.3g} > {ALPHA}; {cis})."
        )
    return f"{a['family']} is better than {b['family']} beyond noise (Welch t-test, p = {p:.3g} <= {ALPHA}; {cis})."


# --- writing ---------------------------------------------------------------------------------------------------


def fmt(value: Any) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    return format_value(value)


def tables(spec: sf.SearchSpec, rows: list[dict[str, Any]], stats: list[dict[str, Any]]) -> dict[str, list[list[str]]]:
    """Every table of the report as header + rows of strings, shared by the markdown and the HTML."""
    seeds = any(len(r["seed_values"]) > 1 for r in rows)
    best_header = [
        "#",
        "trial",
        "family",
        spec.metric,
        *(["std over seeds"] if seeds else []),
        "parameters",
        "time (s)",
        "status",
        "params",
    ]
    best = [best_header] + [
        [
            str(i + 1),
            r["trial_id"],
            r["family"],
            fmt(r["value"]),
            *([fmt(r["std"])] if seeds else []),
            fmt(r["parameters"]),
            fmt(r["time"]),
            r["status"][:40],
            " ".join(f"{k}={format_value(v)}" for k, v in r["params"].items()),
        ]
        for i, r in enumerate(rows[:TOP_TRIALS])
        if r["state"] == "COMPLETE"
    ]
    families = [
        [
            "family",
            "trials (done/pruned/failed)",
            f"best {spec.metric}",
            "best trial",
            "mean ± std",
            "95% CI",
            "CI over",
            "parameters (best)",
            "time per trial (s)",
        ]
    ] + [
        [
            s["family"],
            f"{s['trials']} ({s['complete']}/{s['pruned']}/{s['failed']})",
            fmt(s["best"]),
            s["best_trial"],
            f"{fmt(s['mean'])} ± {fmt(s['std'])}",
            f"[{fmt(s['ci'][0])}, {fmt(s['ci'][1])}]" if s["ci"] else "- (needs 2 values)",
            s["ci_source"],
            fmt(s["parameters"]),
            fmt(s["time_per_trial"]),
        ]
        for s in stats
    ]
    ended = [["trial", "family", "state", "reason"]] + [
        [r["trial_id"], r["family"], r["state"], r["reason"]] for r in rows if r["state"] != "COMPLETE"
    ]
    return {"best": best, "families": families, "ended": ended}


def summary_lines(spec: sf.SearchSpec, study, rows: list[dict[str, Any]]) -> list[str]:
    counts = {s: sum(r["state"] == s for r in rows) for s in ("COMPLETE", "PRUNED", "FAIL", "RUNNING")}
    lines = [
        f"Experiment `{spec.experiment}`; monitored metric `{spec.metric}` ({spec.mode}).",
        f"{len(rows)} trials: " + ", ".join(f"{v} {k.lower()}" for k, v in counts.items() if v) + ".",
    ]
    done = [r for r in rows if r["state"] == "COMPLETE"]
    if done:
        line = best_overrides(spec, sf.trial_params(spec, study.trials[done[0]["number"]]))
        lines.append(
            f"Best trial `{done[0]['trial_id']}` ({spec.metric} = {fmt(done[0]['value'])}); run it with: "
            f"`rnnlab run {spec.experiment} {line}`"
        )
    return lines


def markdown_table(table: list[list[str]]) -> str:
    cells = [[c.replace("|", "\\|") for c in row] for row in table]
    return "\n".join(
        [
            "| " + " | ".join(cells[0]) + " |",
            "|" + "---|" * len(cells[0]),
            *("| " + " | ".join(row) + " |" for row in cells[1:]),
        ]
    )


def html_table(table: list[list[str]]) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in table[0])
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in table[1:])
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def sections(spec, study, rows, stats, figures) -> list[tuple[str, list[tuple[str, Any]]]]:
    """The report as (heading, [(kind, content)]) with kinds text, table and figure: one outline, two renderings."""
    t = tables(spec, rows, stats)
    by_name = {f.name: f for f in figures}
    optuna = [("figure", f) for f in figures if f.name in (*PLOTS, "pareto_front")]
    return [
        ("Summary", [("text", line) for line in summary_lines(spec, study, rows)]),
        ("Best trials", [("table", t["best"]) if len(t["best"]) > 1 else ("text", "No trial completed.")]),
        ("Learning curves", [("figure", by_name["learning_curves"])]),
        ("Optuna: history, importances, parallel coordinates", optuna),
        (
            "Model families",
            [("table", t["families"]), ("text", noise_verdict(stats)), ("figure", by_name["families"])],
        ),
        ("Failed and pruned trials", [("table", t["ended"]) if len(t["ended"]) > 1 else ("text", "None.")]),
    ]


def render_markdown(title: str, outline) -> str:
    parts = [f"# {title}"]
    for heading, items in outline:
        parts.append(f"## {heading}")
        for kind, content in items:
            if kind == "text":
                parts.append(content)
            elif kind == "table":
                parts.append(markdown_table(content))
            elif content.path is not None:
                parts.append(f"![{content.title}]({content.path.name})")
                parts += [f"_Left out of it: {line}._" for line in content.left_out]
            else:
                parts.append(f"_{content.title}: not drawn ({content.note})._")
    return "\n\n".join(parts) + "\n"


def render_html(title: str, outline) -> str:
    style = (
        "body{font-family:sans-serif;max-width:1100px;margin:2em auto;color:#222}table{border-collapse:collapse;"
        "margin:1em 0;font-size:13px}td,th{border:1px solid #ccc;padding:3px 8px;text-align:left}"
        "th{background:#f3f3f3}img{max-width:100%}.note{color:#a33}code{background:#f3f3f3}"
    )
    parts = [
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<style>{style}</style></head><body><h1>{html.escape(title)}</h1>"
    ]
    for heading, items in outline:
        parts.append(f"<h2>{html.escape(heading)}</h2>")
        for kind, content in items:
            if kind == "text":
                pieces = html.escape(content).split("`")  # `code` spans, as in the markdown
                parts.append(
                    "<p>" + "".join(f"<code>{s}</code>" if i % 2 else s for i, s in enumerate(pieces)) + "</p>"
                )
            elif kind == "table":
                parts.append(html_table(content))
            elif content.path is not None:
                data = base64.b64encode(content.path.read_bytes()).decode()
                parts.append(
                    f"<figure><img alt='{html.escape(content.title)}' src='data:image/png;base64,{data}'>"
                    f"<figcaption>{html.escape(content.title)}</figcaption></figure>"
                )
                parts += [f"<p class='note'>Left out of it: {html.escape(line)}</p>" for line in content.left_out]
            else:
                note = f"{content.title}: not drawn ({content.note})"
                parts.append(f"<p class='note'>{html.escape(note)}</p>")
    return "\n".join(parts) + "\n</body></html>\n"


def make_report(folder: str | Path, out: str | Path | None = None) -> Path:
    """Write `report.html`, `report.md` and the figures into `out` (default SEARCH_DIR/report); return the HTML."""
    import matplotlib

    matplotlib.use("Agg")
    spec = sf.SearchSpec.load(folder)
    study = sf.load_study(spec.folder)
    out = Path(out or Path(spec.folder, REPORT_DIR))
    out.mkdir(parents=True, exist_ok=True)
    rows = collect_trials(spec, study)
    stats = family_stats(rows, spec.mode)
    figures = [plot_learning_curves(spec, rows, out), plot_families(stats, spec.metric, out)]
    figures += plot_optuna(study, out, spec.metric)  # last: Optuna's plots switch matplotlib's style
    outline = sections(spec, study, rows, stats, figures)
    title = f"Search {spec.name}"
    # each whole or not at all: a kill or a full disk mid-write keeps the last report's file
    atomic_write_bytes(out / "report.md", render_markdown(title, outline).encode(), durable=False)
    atomic_write_bytes(out / "report.html", render_html(title, outline).encode(), durable=False)
    families = json.dumps([{k: v for k, v in s.items()} for s in stats], indent=2) + "\n"
    atomic_write_bytes(out / "families.json", families.encode(), durable=False)
    return out / "report.html"
