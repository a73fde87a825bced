"""RESULTS.md's section for benchmarks/embed.py and benchmarks/ann.py (results/embed.json)."""

from __future__ import annotations

from pretrained_section import fmt


def embed_section(data: dict | None) -> list[str]:
    lines = ["## `moon-rl embed` + `search` (`embed`)", ""]
    if not data:
        return lines + ["Not run yet: `python benchmarks/embed.py --model RUN` and `python benchmarks/ann.py`.", ""]
    lines += [f"Model: `{data.get('model')}` (its no-reasoning vector); abt-buy, 2 cores.", "",
              "| figure | value |", "|---|---|",
              f"| R@1, `moon-rl eval` (206 x 1,092) | {fmt(data.get('r1_eval'), 4)} |",
              f"| R@1, `embed` then `search --queries` (ties as eval counts them) | {fmt(data.get('r1_search'), 4)} |",
              f"| records/s, `embed` ({data.get('embed_records')} offers, model load included) | {fmt(data.get('records_per_s'), 1)} |",
              f"| kill at 3 moments + resume: every id once, vectors identical | {data.get('kill_resume_ok')} |",
              f"| `--ray` / single process, side by side ({data.get('ray_records')} offers) | {fmt(data.get('ray_throughput_ratio'))}x "
              f"({fmt(data.get('records_per_s_ray'), 1)} vs {fmt(data.get('records_per_s_single_side_by_side'), 1)} rec/s), max abs diff {data.get('ray_max_abs_diff')} |",
              ""]
    curve = data.get("ann_curve") or []
    if curve:
        lines += [f"Approximate index on {data.get('ann_data')} (`{data.get('ann_command')}`): recall@10 against exact "
                  "search and query time as a share of exact's.", "",
                  "| kind | knob | recall@10 | time / exact | build s |", "|---|---|---|---|---|"]
        for p in curve:
            knob = f"nprobe {p['nprobe']} of {p['nlist']}" if p["kind"] == "ivf" else f"efSearch {p['ef_search']}, M {p['m']}"
            lines.append(f"| {p['kind']} | {knob} | {fmt(p['recall@10'])} | {fmt(p['time_ratio'], 2)} | {p['build_s']} |")
        lines.append("")
    return lines
