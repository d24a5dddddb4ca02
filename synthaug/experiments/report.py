"""``synthaug experiment report DIR``: results.csv, report.md and figures from an experiment directory.

- ``results.csv``: one row per cell (arm x classifier x seed) with every measure, per-class precision,
  recall and F1, the training counts; cells that did not run carry the reason. Nothing in it depends
  on timing, so an interrupted and resumed experiment writes the same file as an uninterrupted one.
- ``report.md``: the table as the papers print it (mean ± std over seeds, the 95% interval of the
  headline measure), what the run can resolve (interval widths), for every synthesizer arm the paired
  comparison against the strongest classical baseline of the same classifier (over seeds and by
  paired bootstrap over the test images, :mod:`synthaug.experiments.stats`) with its verdict, per-class
  F1, confusion matrices summed over seeds, the cells not run and why, and a Time section: each
  stage of the last run (data, fits, balances, cells, quality, the report) with its seconds, and the
  run's total wall time.
- ``figures/``: the headline measure per arm with 95% error bars; the summed confusion matrices.
"""

from __future__ import annotations

import csv
import io
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from synthaug.errors import SynthaugError
from synthaug.experiments import stats
from synthaug.experiments.layout import Layout
from synthaug.experiments.spec import JOINT, Arm, Cell, ClassifierArm, Spec, grid
from synthaug.kit.files import atomic_path
from synthaug.pipeline.metrics import MEASURES, POSITIVE_MEASURES, confusion_measures


def spec_from_dict(values: dict[str, Any]) -> Spec:
    values = dict(values)
    values["arms"] = [Arm(**a) for a in values["arms"]]
    values["classifiers"] = [ClassifierArm(**c) for c in values["classifiers"]]
    return Spec(**values)


def load_experiment(out: str | Path) -> tuple[Spec, dict[str, Any]]:
    path = Layout(out).experiment_json
    if not path.is_file():
        raise SynthaugError(f"{out}: not an experiment directory (no {path.name}; run `synthaug experiment run`)")
    try:
        saved = json.loads(path.read_text())
        return spec_from_dict(saved["spec"]), saved
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise SynthaugError(f"{path}: not a synthaug experiment file ({exc})") from None


@dataclass
class Row:
    """One cell: its place in the grid and, when it ran, its measures and predictions."""

    cell: Cell
    status: str  # "done" | "not run" | "not finished"
    reason: str = ""
    class_names: list[str] = field(default_factory=list)
    confusion: np.ndarray | None = None
    measures: dict[str, float] = field(default_factory=dict)
    per_class: dict[str, dict[str, float]] = field(default_factory=dict)
    counts: dict[str, Any] = field(default_factory=dict)
    predictions: Path | None = None
    seconds: float = 0.0
    network: str = ""

    @property
    def group(self) -> tuple[str, str]:
        return self.cell.arm.key, self.cell.classifier_key


def collect(out: str | Path) -> tuple[Spec, list[Row]]:
    out = Path(out)
    layout = Layout(out)
    spec, _ = load_experiment(out)
    not_run = json.loads(layout.not_run_json.read_text()) if layout.not_run_json.is_file() else {}
    rows = []
    for cell in grid(spec):
        done = layout.cell_json(cell)
        if not done.is_file():
            reason = not_run.get(cell.key)
            rows.append(Row(cell, "not run" if reason else "not finished",
                            reason or "not finished: run the same command again to finish it"))
            continue
        result = json.loads(done.read_text())
        metrics = result["metrics"]
        names = list(metrics["per_class"])
        cm = np.asarray(metrics["confusion"], np.int64)
        positive = names.index(spec.positive) if spec.positive in names else None
        measures = confusion_measures(cm, positive)
        measures["auc"] = (metrics.get("roc_auc") or {}).get("macro")
        rows.append(Row(cell, "done", "", names, cm, measures, metrics["per_class"], result["train_counts"],
                        out / result["predictions"], result.get("seconds", 0.0), result.get("network", "")))
    return spec, rows


# ---------------------------------------------------------------------------------------------
# results.csv
# ---------------------------------------------------------------------------------------------
def results_csv(spec: Spec, rows: list[Row]) -> str:
    classes = next((r.class_names for r in rows if r.status == "done"), [])
    measures = [m for m in [*MEASURES, "auc"] if any(m in r.measures for r in rows)]
    head = ["experiment", "preset", "cell", "arm", "arm_label", "baseline", "synthesizer", "strategy", "classifier",
            "classifier_label", "network", "seed", "status", "reason", "n_test", "n_train", "n_synthetic", *measures,
            *(f"{k}[{c}]" for c in classes for k in ("precision", "recall", "f1"))]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(head)
    for r in rows:
        arm, clf = r.cell.arm, r.cell.classifier
        line = [spec.name, spec.preset, r.cell.key, arm.key, arm.label, str(arm.baseline).lower(),
                arm.synthesizer or "", json.dumps(arm.strategy) if isinstance(arm.strategy, dict) else arm.strategy,
                r.cell.classifier_key, clf.label if clf else "jointly trained classifier",
                r.network or (clf.classifier if clf else ""), r.cell.seed, r.status, r.reason]
        if r.status == "done":
            line += [int(r.confusion.sum()), sum(r.counts["train"].values()), sum(r.counts["synthetic"].values())]
            line += [_num(r.measures.get(m)) for m in measures]
            line += [_num(r.per_class[c][k]) for c in classes for k in ("precision", "recall", "f1")]
        else:
            line += [""] * (3 + len(measures) + 3 * len(classes))
        writer.writerow(line)
    return buffer.getvalue()


def _num(value: Any) -> str:
    return "" if value is None else f"{float(value):.6f}"


# ---------------------------------------------------------------------------------------------
# the comparisons
# ---------------------------------------------------------------------------------------------
def groups(rows: list[Row]) -> dict[tuple[str, str], list[Row]]:
    out: dict[tuple[str, str], list[Row]] = {}
    for r in rows:
        if r.status == "done":
            out.setdefault(r.group, []).append(r)
    return out


def group_interval(members: list[Row], measure: str) -> dict | None:
    values = [r.measures.get(measure) for r in members]
    if not values or any(v is None for v in values):
        return None
    return stats.mean_interval(values)


def strongest_baseline(spec: Spec, done: dict[tuple[str, str], list[Row]], classifier_key: str,
                       network: str) -> tuple[str, str] | None:
    """The classical arm with the best mean headline measure, trained with the same classifier (for a
    joint-classifier arm: any classifier of the same network)."""
    candidates = []
    for (arm_key, clf_key), members in done.items():
        arm = spec.arm(arm_key)
        if not arm.baseline:
            continue
        if classifier_key == JOINT:
            if not members or members[0].network != network:
                continue
        elif clf_key != classifier_key:
            continue
        interval = group_interval(members, spec.headline)
        if interval is not None:
            candidates.append((interval["mean"], arm_key, clf_key))
    if not candidates:
        return None
    _, arm_key, clf_key = max(candidates, key=lambda c: c[0])
    return arm_key, clf_key


def compare(spec: Spec, arm_rows: list[Row], base_rows: list[Row]) -> tuple[dict | None, dict | None]:
    """(paired comparison over seeds, paired bootstrap over test images) of arm against baseline."""
    from synthaug.pipeline.evaluate import read_predictions

    base_by_seed = {r.cell.seed: r for r in base_rows}
    common = [(base_by_seed[r.cell.seed], r) for r in arm_rows if r.cell.seed in base_by_seed]
    if not common:
        return None, None
    measure = spec.headline
    seed_cmp = stats.paired_seed_comparison([b.measures[measure] for b, _ in common],
                                            [a.measures[measure] for _, a in common])
    pairs = []
    for base, arm in common:
        y_b, p_b, o_b = read_predictions(base.predictions, base.class_names)
        y_a, p_a, o_a = read_predictions(arm.predictions, arm.class_names)
        if o_b != o_a or not np.array_equal(y_a, y_b):
            return seed_cmp, None  # not the same test images: no pairing by image
        pairs.append((y_a, p_b, p_a))
    names = common[0][1].class_names
    positive = names.index(spec.positive) if spec.positive in names else None
    boot = stats.paired_bootstrap(pairs, measure, positive if measure in POSITIVE_MEASURES else None,
                                  num_classes=len(names))
    return seed_cmp, boot


def comparisons(spec: Spec, rows: list[Row]) -> list[dict[str, Any]]:
    done = groups(rows)
    out = []
    for (arm_key, clf_key), members in done.items():
        arm = spec.arm(arm_key)
        if arm.baseline:
            continue
        base = strongest_baseline(spec, done, clf_key, members[0].network)
        if base is None:
            out.append({"arm": arm_key, "classifier": clf_key, "baseline": None,
                        "sentence": f"{arm.label} ({_clf_label(spec, clf_key)}): no classical baseline ran with "
                                    f"this classifier, so nothing to compare against."})
            continue
        seed_cmp, boot = compare(spec, members, done[base])
        base_label = f"{spec.arm(base[0]).label}, the strongest classical baseline"
        sentence = stats.verdict_sentence(f"{arm.label} ({_clf_label(spec, clf_key)})", base_label, spec.headline,
                                          seed_cmp, boot)
        out.append({"arm": arm_key, "classifier": clf_key, "baseline": base, "seed": seed_cmp, "bootstrap": boot,
                    "verdict": stats.verdict(seed_cmp, boot), "sentence": sentence})
    return out


def ranking(spec: Spec, done: dict[tuple[str, str], list[Row]]) -> list[str]:
    """Per classifier: which arm had the best mean headline measure, and by how much it led the next."""
    out = []
    for clf_key in dict.fromkeys(k[1] for k in done):
        means = sorted(((group_interval(m, spec.headline) or {}).get("mean"), a) for (a, c), m in done.items()
                       if c == clf_key and group_interval(m, spec.headline) is not None)[::-1]
        if not means:
            continue
        (best, arm), *rest = means
        text = f"{_clf_label(spec, clf_key)}: best mean {spec.headline} {best:.3f} with {spec.arm(arm).label}"
        if rest:
            text += f", {best - rest[0][0]:+.3f} ahead of {spec.arm(rest[0][1]).label} ({rest[0][0]:.3f})"
            worst = rest[-1]
            text += f"; lowest {worst[0]:.3f} with {spec.arm(worst[1]).label}"
        out.append(text + ".")
    return out


def _clf_label(spec: Spec, key: str) -> str:
    return "its jointly trained classifier" if key == JOINT else spec.classifier(key).label


# ---------------------------------------------------------------------------------------------
# report.md
# ---------------------------------------------------------------------------------------------
def _cell_text(interval: dict | None) -> str:
    if interval is None:
        return "n/a"
    if interval["std"] is None:
        return f"{interval['mean']:.3f}"
    return f"{interval['mean']:.3f} ± {interval['std']:.3f}"


def report_markdown(spec: Spec, rows: list[Row], saved: dict[str, Any], comps: list[dict[str, Any]],
                    figures: dict[str, str], out: Path | None = None) -> str:
    """report.md; ``out``: the experiment directory, whose quality/ measures get a section when present."""
    done = groups(rows)
    first = next((r for r in rows if r.status == "done"), None)
    lines = _header_lines(spec, first, saved.get("command"))

    # the verdicts first: the question the experiment answers
    lines += ["## Does synthesis beat classical balancing?", ""]
    lines += [f"- {sentence}" for sentence in ranking(spec, done)]
    if comps:
        lines += [f"- {c['sentence']}" for c in comps]
    else:
        lines.append("No synthesizer arm finished, so there is nothing to compare.")
    lines += ["", _resolution(spec, done, comps), ""]

    # the paper's table
    lines += [f"## Results ({spec.headline} is the headline measure)", "",
              "| arm | classifier | seeds | " + " | ".join(spec.measures) + f" | 95% interval of {spec.headline} |",
              "|---|---|---:|" + "---:|" * len(spec.measures) + "---|"]
    for (arm_key, clf_key), members in done.items():
        head = group_interval(members, spec.headline)
        ci = "n/a (1 seed)" if head is None or head["low"] is None else \
            f"{head['low']:.3f} to {head['high']:.3f} (±{head['half_width']:.3f})"
        lines.append(f"| {spec.arm(arm_key).label} | {_clf_label(spec, clf_key)} | {len(members)} | " +
                     " | ".join(_cell_text(group_interval(members, m)) for m in spec.measures) + f" | {ci} |")
    lines += ["", "Mean ± standard deviation over seeds; the interval is the 95% Student-t interval of the mean.", ""]
    if "headline" in figures:
        lines += [f"![{spec.headline}]({figures['headline']})", ""]

    lines += _class_lines(spec, done, first, figures)

    # training sets
    lines += ["## Training sets (seed 0)", "", "| arm | training images per class | of which synthetic |",
              "|---|---|---|"]
    seen = set()
    for r in rows:
        if r.status == "done" and r.cell.seed == 0 and r.cell.arm.key not in seen:
            seen.add(r.cell.arm.key)
            lines.append(f"| {r.cell.arm.label} | {_counts(r.counts['train'])} | {_counts(r.counts['synthetic'])} |")
    lines.append("")
    lines += [f"![{key}]({path})" for key, path in figures.items() if key.startswith("samples-")]
    lines.append("")

    lines += _quality_lines(spec, done, out)

    missing = [r for r in rows if r.status != "done"]
    if missing:
        lines += ["## Cells not run", "", "| cell | status | why |", "|---|---|---|"]
        lines += [f"| {r.cell.key} | {r.status} | {r.reason} |" for r in missing]
        lines.append("")
    lines += time_lines(rows, saved)
    return "\n".join(lines)


def _header_lines(spec: Spec, first: Row | None, command: str | None) -> list[str]:
    """The report's title, description and what was run: spec, data, split, test images, command."""
    lines = [f"# {spec.title}", ""]
    if spec.description:
        lines += [spec.description.strip(), ""]
    lines += [f"- spec: `{spec.name}` ({Path(spec.origin).name}), preset `{spec.preset}`, seeds 0..{spec.seeds - 1}",
              f"- data: `{spec.data['source']}`" + (f" ({spec.data['dir']})" if spec.data.get("dir") else "") +
              (f", options {json.dumps(spec.data['options'])}" if spec.data["options"] else "") +
              (f", size {spec.data['size']}" if spec.data.get("size") else "") +
              (f"; task: {spec.binary} vs rest" if spec.binary else "; task: all classes"),
              "- split: " + (f"{spec.split['test_per_class']} real test images per class"
                              if "test_per_class" in spec.split else
                              f"{spec.split['test_fraction']:.0%} of every class's real images (whole patients)") +
              ", fixed by the seed, the same for every arm of a seed"]
    if first is not None:
        lines.append(f"- test images per seed: {int(first.confusion.sum())} "
                     f"({', '.join(f'{c} {n}' for c, n in first.counts['test'].items())})")
    if command:
        lines.append(f"- command: `{command}`")
    lines.append("")
    return lines


def _class_lines(spec: Spec, done: dict[tuple[str, str], list[Row]], first: Row | None,
                 figures: dict[str, str]) -> list[str]:
    """Per-class F1 (mean over seeds) and the confusion matrices summed over seeds."""
    lines: list[str] = []
    if first is not None:
        classes = first.class_names
        lines += ["## Per-class F1 (mean over seeds)", "", "| arm | classifier | " + " | ".join(classes) + " |",
                  "|---|---|" + "---:|" * len(classes)]
        for (arm_key, clf_key), members in done.items():
            lines.append(f"| {spec.arm(arm_key).label} | {_clf_label(spec, clf_key)} | " + " | ".join(
                f"{np.mean([r.per_class[c]['f1'] for r in members]):.3f}" for c in classes) + " |")
        lines += ["", "## Confusion matrices (summed over seeds; rows true, columns predicted)", ""]
        for (arm_key, clf_key), members in done.items():
            cm = sum(r.confusion for r in members)
            figure = figures.get(f"{arm_key}--{clf_key}")
            lines += [f"**{spec.arm(arm_key).label}, {_clf_label(spec, clf_key)}**"
                      + (f" ![confusion]({figure})" if figure is not None else ""),
                      "", "| true \\ predicted | " + " | ".join(classes) + " |", "|---|" + "---:|" * len(classes)]
            lines += [f"| {c} | " + " | ".join(str(int(v)) for v in cm[i]) + " |" for i, c in enumerate(classes)]
            lines.append("")
    return lines


def _quality_lines(spec: Spec, done: dict[tuple[str, str], list[Row]], out: Path | None) -> list[str]:
    """The section on the synthetic images themselves (experiments/quality.py), when it was measured."""
    from synthaug.experiments.quality import headline_text, quality_section
    from synthaug.kit.markdown import escape

    if out is None:
        return []
    labels = {arm.store_key: arm.label for arm in spec.arms}
    first_classifier = next((clf for _, clf in done), None)

    def downstream(store_key: str) -> str:
        members = [r for (arm, clf), rows in done.items() for r in rows
                   if spec.arm(arm).store_key == store_key and clf == first_classifier]
        return headline_text(members, spec.headline)

    return quality_section(out, labels, spec.headline, downstream, escape)


def _counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{c} {n}" for c, n in counts.items())


def _resolution(spec: Spec, done: dict, comps: list[dict]) -> str:
    widths = [i["half_width"] for m in done.values()
              if (i := group_interval(m, spec.headline)) and i["half_width"] is not None]
    boots = [c["bootstrap"]["half_width"] for c in comps if c.get("bootstrap")]
    parts = []
    if widths:
        parts.append(f"the 95% interval of an arm's mean {spec.headline} over {spec.seeds} seeds has a median "
                     f"half-width of ±{float(np.median(widths)):.3f}")
    if boots:
        parts.append(f"the paired bootstrap interval of a difference between two arms has a median half-width of "
                     f"±{float(np.median(boots)):.3f}")
    if not parts:
        return "With one seed and no paired comparison, this run gives no interval: it cannot tell arms apart."
    return ("What this run can resolve: " + "; ".join(parts) +
            ". Differences smaller than these are within the noise of this run.")


def time_lines(rows: list[Row], saved: dict[str, Any]) -> list[str]:
    """The Time section: the last run's stages (experiment.json's ``stages``) and its total wall time.
    An experiment directory written before stages were recorded gets the cells' sum instead."""
    stages = saved.get("stages")
    total = saved.get("seconds")
    lines = ["## Time", ""]
    if not stages:
        train = sum(r.seconds for r in rows if r.status == "done")
        lines.append(f"Training and evaluating the cells: {train:.1f} s" +
                     (f"; the whole last run: {total:.1f} s." if total is not None else "."))
        return lines + [""]
    lines += ["| stage | seconds |", "|---|---:|"]
    for stage in stages:
        seconds = "not recorded" if stage.get("seconds") is None else f"{stage['seconds']:.1f}"
        lines.append(f"| {stage['name']} | {seconds}{' (earlier run)' if stage.get('reused') else ''} |")
    lines.append("")
    if total is not None:
        lines.append(f"Total wall time of the last run: {total:.1f} s ({total / 60:.1f} min).")
    if any(stage.get("reused") for stage in stages):
        lines.append("Stages marked (earlier run) were done by an earlier run of this experiment and reused: their "
                     "seconds are that run's, not part of this total.")
    return lines + [""]


# ---------------------------------------------------------------------------------------------
# figures
# ---------------------------------------------------------------------------------------------
def headline_figure(spec: Spec, done: dict[tuple[str, str], list[Row]], path: Path) -> Path:
    from synthaug.pipeline.report import pyplot, save_figure

    plt = pyplot()
    arms = list(dict.fromkeys(k[0] for k in done))
    clfs = list(dict.fromkeys(k[1] for k in done))
    width = 0.8 / max(1, len(clfs))
    fig, ax = plt.subplots(figsize=(1.6 + 1.3 * len(arms), 3.8))
    for j, clf in enumerate(clfs):
        xs, means, errors = [], [], []
        for i, arm in enumerate(arms):
            interval = group_interval(done.get((arm, clf), []), spec.headline)
            if interval is None:
                continue
            xs.append(i + (j - (len(clfs) - 1) / 2) * width)
            means.append(interval["mean"])
            errors.append(interval["half_width"] or 0.0)
        ax.bar(xs, means, width * 0.9, yerr=errors, capsize=4, label=_clf_label(spec, clf))
    ax.set_xticks(range(len(arms)), [spec.arm(a).label for a in arms], rotation=20, ha="right")
    ax.set_ylabel(spec.headline)
    ax.set_ylim(0, 1.05)
    ax.set_title(f"{spec.name} ({spec.preset}): mean over seeds, 95% interval")
    if len(clfs) > 1:
        ax.legend(fontsize=8)
    return save_figure(fig, path)


def sample_grids(spec: Spec, out: Path) -> dict[str, str]:
    """Real and synthetic training images per class, from each synthesizing arm's first store."""
    from synthaug.experiments.figures import sample_grid
    from synthaug.pipeline.store import open_store, read_store

    layout = Layout(out)
    figures = {}
    for arm in spec.arms:
        store = layout.store(arm, 0)
        if arm.synthesizer is None or arm.store_key != arm.key or not store.is_file():
            continue
        path = layout.samples_figure(arm.key)
        dataset = open_store(store, "train")  # only the images drawn are read, not the whole split
        sample_grid(read_store(store, "train", images=False), path, image=lambda i: dataset[i][0].numpy(),
                    title=f"{arm.label}: real and synthetic training images")
        dataset.close()
        figures[f"samples-{arm.key}"] = layout.link(path)
    return figures


def write_report(out: str | Path, *, clock=None) -> Path:
    """Write results.csv, report.md and the figures of experiment directory ``out``; return report.md.

    ``clock``: the running experiment's :class:`~synthaug.experiments.runner.StageClock`. The report's
    own time is then recorded as its last stage, the clock stopped, and the Time section shows this
    run's stages; without it (``synthaug experiment report``), the stages experiment.json holds.
    """
    from synthaug.pipeline.report import plot_confusion

    started = time.perf_counter()
    out = Path(out)
    layout = Layout(out)
    spec, rows = collect(out)
    _, saved = load_experiment(out)
    done = groups(rows)
    figures: dict[str, str] = {}
    if done:
        headline_figure(spec, done, layout.headline_figure)
        figures["headline"] = layout.link(layout.headline_figure)
        for (arm_key, clf_key), members in done.items():
            path = layout.confusion_figure(arm_key, clf_key)
            plot_confusion(sum(r.confusion for r in members), members[0].class_names, path,
                           title=f"{arm_key}, {clf_key}")
            figures[f"{arm_key}--{clf_key}"] = layout.link(path)
        figures.update(sample_grids(spec, out))
    comps = comparisons(spec, rows)
    with atomic_path(layout.results_csv) as tmp:
        tmp.write_text(results_csv(spec, rows))
    with atomic_path(layout.comparisons_json) as tmp:
        tmp.write_text(json.dumps(comps, indent=2, default=str))
    if clock is not None:  # only report.md is left to write: the report's stage is all but done
        clock.record("report", time.perf_counter() - started)
        saved = {**saved, "stages": clock.stages, "seconds": clock.stop()}
    with atomic_path(layout.report_md) as tmp:
        tmp.write_text(report_markdown(spec, rows, saved, comps, figures, out))
    return layout.report_md
