#!/usr/bin/env python3
"""Tables (and, with matplotlib, plots) of stackrl learning runs.

Reads every <root>/<part>/<env>/<algo label>/<seed>/metrics.jsonl written by
scripts/learning_sac.sh and prints, per part and environment, a markdown table of the
deterministic evaluation return (mean +- std over seeds) at fixed step counts, the number of
seeds, and the largest |TD error| seen (the paper's heuristic for Res-SAC's clip value).
With matplotlib installed it also writes docs/learning_<part>_<env>.png.

Usage: python3 scripts/summarize_learning.py runs/learning [--plots docs]
"""
import json
import math
import os
import sys


def load(path):
    evals, td_max = {}, 0.0
    with open(path) as f:
        for line in f:
            row = json.loads(line)
            if row.get("event") == "eval":
                evals[row["step"]] = row["eval_mean"]
            if isinstance(row.get("td_abs_max"), (int, float)):
                td_max = max(td_max, row["td_abs_max"])
    return evals, td_max


def mean_std(xs):
    m = sum(xs) / len(xs)
    return m, math.sqrt(sum((x - m) ** 2 for x in xs) / len(xs))


def main():
    args = sys.argv[1:]
    if not args:
        print(__doc__)
        sys.exit(2)
    root = args[0]
    plots = args[args.index("--plots") + 1] if "--plots" in args else "docs"
    for part in sorted(os.listdir(root)):
        for env in sorted(os.listdir(os.path.join(root, part))):
            base = os.path.join(root, part, env)
            table, curves = [], {}
            for algo in sorted(os.listdir(base)):
                runs = []
                for seed in sorted(os.listdir(os.path.join(base, algo))):
                    p = os.path.join(base, algo, seed, "metrics.jsonl")
                    if os.path.exists(p):
                        runs.append(load(p))
                if not runs:
                    continue
                steps = sorted(set.intersection(*(set(r[0]) for r in runs)))
                curves[algo] = [(s, [r[0][s] for r in runs]) for s in steps]
                table.append((algo, runs, steps))
            if not table:
                continue
            marks = sorted({s for _, _, st in table for s in st})
            marks = [s for s in marks if s % 5000 == 0] or marks[-1:]
            print(f"\n### {part}: {env}\n")
            print("| algorithm | seeds | " + " | ".join(f"{s} steps" for s in marks)
                  + " | max abs TD |")
            print("|---|---|" + "---|" * len(marks) + "---|")
            for algo, runs, steps in table:
                cells = []
                for s in marks:
                    xs = [r[0][s] for r in runs if s in r[0]]
                    if xs:
                        m, sd = mean_std(xs)
                        cells.append(f"{m:.1f} ± {sd:.1f}")
                    else:
                        cells.append("–")
                td = max(r[1] for r in runs)
                print(f"| {algo} | {len(runs)} | " + " | ".join(cells) + f" | {td:.2f} |")
            try:
                import matplotlib
                matplotlib.use("Agg")
                import matplotlib.pyplot as plt
            except ImportError:
                continue
            fig, ax = plt.subplots(figsize=(6, 4))
            for algo, pts in curves.items():
                xs = [s for s, _ in pts]
                ms = [mean_std(v)[0] for _, v in pts]
                sds = [mean_std(v)[1] for _, v in pts]
                ax.plot(xs, ms, label=algo)
                ax.fill_between(xs, [m - s for m, s in zip(ms, sds)],
                                [m + s for m, s in zip(ms, sds)], alpha=0.2)
            ax.set_xlabel("environment steps")
            ax.set_ylabel("deterministic evaluation return")
            ax.set_title(f"{env} ({part})")
            ax.legend()
            os.makedirs(plots, exist_ok=True)
            out = os.path.join(plots, f"learning_{part}_{env}.png")
            fig.tight_layout()
            fig.savefig(out, dpi=100)
            print(f"\n(plot: {out})")


if __name__ == "__main__":
    main()
