"""``synthaug experiment report DIR``: results.csv, comparisons.json, report.md and figures from an
experiment directory.

- ``results.csv``: one row per cell (arm x classifier x seed) with every measure, the threshold-free
  measures and calibration of its class probabilities (``auc``, ``auprc``, ``ece``, ``brier``; empty
  where a cell kept no probabilities), per-class precision, recall and F1, the training counts; cells
  that did not run carry the reason. Nothing in it depends on timing, so an interrupted and resumed
  experiment writes the same file as an uninterrupted one.
- ``comparisons.json``: one entry per synthesizer arm x classifier x baseline named before the run
  (the spec's ``compare_to``): the paired comparison of the headline measure (over seeds, by
  bootstrap over the test set, by bootstrap over seeds and test set), its Holm-adjusted p-value,
  verdict and sentence, and the same for ROC-AUC and AUPRC (``threshold_free``)
  (:mod:`synthaug.experiments.compare`).
- ``report.md``: the verdicts first (with how many comparisons were corrected and how, what the
  bootstrap resampled, and the strongest classical baseline for information), the table as the
  papers print it (mean ± std over seeds, a bootstrap interval of the headline measure that stays in
  [0, 1]), the threshold-free measures and calibration with their comparisons, per-class F1 with
  intervals, confusion matrices summed over seeds, the training sets, the quality of the synthetic
  images, the cells not run and why, and a Time section: each stage of the last run with its seconds,
  and the run's total wall time.
- ``figures/``: the headline measure per arm with its interval; the summed confusion matrices; a
  reliability diagram per arm and classifier (every seed's test images).
"""

from __future__ import annotations

import csv
import io
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from synthaug.errors import SynthaugError
from synthaug.experiments import compare, stats
from synthaug.experiments.compare import Row
from synthaug.experiments.layout import Layout
from synthaug.experiments.spec import JOINT, Arm, ClassifierArm, Spec, grid
from synthaug.kit.files import atomic_path
from synthaug.kit.markdown import escape
from synthaug.pipeline.metrics import MEASURES, PROBABILITY_MEASURES, confusion_measures, probability_measures


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


def collect(out: str | Path, loader: compare.Predictions | None = None) -> tuple[Spec, list[Row]]:
    """The spec and one :class:`Row` per cell; ``loader`` reads the cells' predictions (the
    threshold-free measures and calibration come from their class probabilities)."""
    out = Path(out)
    layout = Layout(out)
    loader = loader or compare.Predictions()
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
        row = Row(cell, "done", "", names, cm, confusion_measures(cm, positive), metrics["per_class"],
                  result["train_counts"], out / result["predictions"], result.get("seconds", 0.0),
                  result.get("network", ""), out / result["store"] if result.get("store") else None)
        row.measures.update(_probability_measures(row, metrics, positive, loader))
        rows.append(row)
    return spec, rows


def _probability_measures(row: Row, metrics: dict, positive: int | None, loader: compare.Predictions) -> dict:
    """auc, auprc, ece, brier of the cell's class probabilities; a cell whose predictions are gone or
    kept none: the ROC-AUC of its metrics.json where it is the same measure, the rest missing (None)."""
    test = loader.of(row)
    if test is not None and test.probabilities is not None:
        return probability_measures(test.y, test.probabilities, positive)
    roc = metrics.get("roc_auc") or {}
    if positive is None or len(row.class_names) == 2:  # macro one-vs-rest = the positive class's for 2 classes
        auc = roc.get("macro")
    else:
        auc = (roc.get("per_class") or {}).get(row.class_names[positive])
    return {"auc": auc, "auprc": None, "ece": None, "brier": None}


# ---------------------------------------------------------------------------------------------
# results.csv
# ---------------------------------------------------------------------------------------------
def results_csv(spec: Spec, rows: list[Row]) -> str:
    classes = next((r.class_names for r in rows if r.status == "done"), [])
    measures = [m for m in MEASURES if any(m in r.measures for r in rows)] + list(PROBABILITY_MEASURES)
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
                    figures: dict[str, str], out: Path | None = None, *,
                    loader: compare.Predictions | None = None, intervals: dict | None = None) -> str:
    """report.md; ``out``: the experiment directory, whose quality/ measures get a section when present;
    ``loader``: the cells' predictions (read again when not given); ``intervals``: the headline
    measure's interval per arm and classifier (:func:`compare.arm_interval`; computed when not given)."""
    loader = loader or compare.Predictions()
    done = groups(rows)
    first = next((r for r in rows if r.status == "done"), None)
    if intervals is None:
        intervals = {group: compare.arm_interval(spec, members, spec.headline, loader)
                     for group, members in done.items()}
    unit = compare.resampled_unit(rows, loader)
    lines = _header_lines(spec, first, saved.get("command"))
    lines += _verdict_lines(spec, done, comps, intervals, unit)  # the question the experiment answers
    lines += ways_lines(spec, comps)
    lines += _results_lines(spec, done, intervals, unit, figures)
    lines += _probability_lines(spec, done, comps, first, figures)
    lines += _class_lines(spec, done, first, figures, loader)
    lines += _training_lines(rows, figures)
    lines += _filter_lines(spec, out)
    lines += _quality_lines(spec, done, out)
    missing = [r for r in rows if r.status != "done"]
    if missing:
        lines += ["## Cells not run", "", "| cell | status | why |", "|---|---|---|"]
        lines += [f"| {r.cell.key} | {r.status} | {r.reason} |" for r in missing]
        lines.append("")
    lines += time_lines(rows, saved)
    return "\n".join(lines)


def _verdict_lines(spec: Spec, done: dict, comps: list[dict], intervals: dict, unit: dict | None) -> list[str]:
    """Which arm won, the strongest classical baseline (information), how the verdicts were reached and
    each named pair's sentence, what the bootstrap resampled and what the run can resolve."""
    lines = ["## Does synthesis beat classical balancing?", ""]
    lines += [f"- {sentence}" for sentence in ranking(spec, done)]
    lines += [f"- {sentence}" for sentence in _strongest_lines(spec, done)]
    if comps:
        lines += ["", _method_text(spec, comps, unit), ""]
        lines += [f"- {c['sentence']}" for c in comps]
    else:
        lines += ["", "No synthesizer arm finished, so there is nothing to compare."]
    return lines + ["", _unit_text(unit), "", _resolution(spec, intervals, comps), ""]


def ways_lines(spec: Spec, comps: list[dict]) -> list[str]:
    """The ways of using synthesis ranked: every synthesizer arm (each way, each sweep value) by its
    difference from the strongest classical baseline of its classifier, best first, with the seed x
    test-unit interval, the Holm-adjusted p-value over all the report's comparisons and the verdict;
    then, plainly, whether any helped. Only where the strongest baseline was one of the named ones."""
    against = [c for c in comps if c.get("strongest_baseline") and c.get("verdict") is not None]
    if not against:
        return []

    def diff(c: dict) -> float:
        return (c.get("seed_bootstrap") or c.get("bootstrap") or {}).get("diff") or c["seed"]["mean"]
    against.sort(key=diff, reverse=True)
    m = against[0]["holm_comparisons"]
    lines = ["## The ways of using synthesis, ranked", "",
             f"Each synthesizer arm against the strongest classical baseline of its classifier ({spec.headline} "
             f"difference, synthesis minus baseline, with the 95% interval of the seed x test-unit bootstrap; the "
             f"t interval over seeds corrected for all {m} comparisons of this report (Bonferroni: each at "
             f"level 1 - 0.05/{m}); Holm's correction in the p-value. The baseline was picked after the run, so "
             f"this ranking informs; the verdicts above decide):", "",
             f"| rank | arm | classifier | strongest baseline | {spec.headline} difference [95%] | "
             f"corrected t interval over seeds | Holm p | verdict |",
             "|---:|---|---|---|---|---|---:|---|"]
    for rank, c in enumerate(against, start=1):
        interval = c.get("seed_bootstrap") or c.get("bootstrap") or {}
        span = (f"{diff(c):+.3f} [{interval['low']:+.3f}, {interval['high']:+.3f}]"
                if interval.get("low") is not None else f"{diff(c):+.3f}")
        p = "n/a" if c.get("p_holm") is None else f"{c['p_holm']:.3f}"
        lines.append(f"| {rank} | {escape(spec.arm(c['arm']).label)} | {escape(_clf_label(spec, c['classifier']))} | "
                     f"{escape(spec.arm(c['baseline'][0]).label)} | {span} | {_corrected(c.get('seed'), m)} | {p} | "
                     f"{c['verdict']} |")
    helped = [c for c in against if c["verdict"] == "helped"]
    best = against[0]
    if all(c["verdict"] == "not judged" for c in against):
        text = (f"Not judged: with 1 seed no verdict is given. By the mean difference alone the first is "
                f"{spec.arm(best['arm']).label} ({diff(best):+.3f}).")
    elif helped:
        text = ("Helped against the strongest classical baseline: " +
                "; ".join(f"{spec.arm(c['arm']).label} ({diff(c):+.3f})" for c in helped) + ".")
    else:
        text = (f"None of the {len(against)} ways of using synthesis helped against the strongest classical "
                f"baseline. The closest: {spec.arm(best['arm']).label} ({diff(best):+.3f}, {best['verdict']}).")
    return lines + ["", text, ""]


def _corrected(seed: dict | None, comparisons: int) -> str:
    """The t interval of the seeds' mean difference at level 1 - 0.05 / ``comparisons`` (n/a with one seed)."""
    if not seed or seed.get("std") is None or seed.get("n", 0) < 2:
        return "n/a"
    half = stats.t_quantile(seed["n"] - 1, 1 - 0.05 / max(comparisons, 1)) * seed["std"] / np.sqrt(seed["n"])
    return f"{seed['mean'] - half:+.3f} to {seed['mean'] + half:+.3f}"


def _strongest_lines(spec: Spec, done: dict) -> list[str]:
    out = []
    for clf_key in dict.fromkeys(c for _, c in done if c != JOINT):
        found = compare.strongest_baseline(spec, done, clf_key, "")
        if found is not None:
            out.append(f"Strongest classical baseline with {_clf_label(spec, clf_key)}, for information only (the "
                       f"baseline arm with the best mean {spec.headline}, picked after the run on the same test "
                       f"images; the verdicts below compare the pairs named before the run): "
                       f"{spec.arm(found[0]).label} ({found[2]:.3f}).")
    return out


def _method_text(spec: Spec, comps: list[dict], unit: dict | None) -> str:
    named = ", ".join(spec.arm(k).label for k in spec.baselines_compared())
    seeds = max((int(c.get("seeds") or 0) for c in comps), default=0)
    if seeds < 2:
        return (f"Each synthesizer arm is compared with each baseline named before the run (compare_to: {named}) "
                f"on {spec.headline}. With 1 seed no verdict is given (*not judged*): the difference comes with its "
                f"95% paired bootstrap interval over the test set, which covers test-set noise only, not training "
                f"variance. Run 2 or more seeds (`--seeds N`) for verdicts.")
    counts: dict[str, int] = {}
    for c in comps:
        if c.get("holm_comparisons"):
            counts[c["baseline"][1]] = int(c["holm_comparisons"])
    tables = "; ".join(f"{_clf_label(spec, k)}: {m} comparison{'s' if m != 1 else ''}" for k, m in counts.items())
    what = (unit or {}).get("unit", "image")
    text = (f"Each synthesizer arm is compared with each baseline named before the run (compare_to: {named}) on "
            f"{spec.headline} ({tables}). The p-value of each pair comes from a paired bootstrap that resamples "
            f"the seeds and the test {what}s of each seed drawn; the p-values of a table's comparisons are "
            f"corrected for multiplicity with Holm's method. A verdict (*helped* / *hurt*) needs the "
            f"Holm-adjusted p-value below 0.05 and the 95% t interval over seeds on the same side of 0; "
            f"otherwise the arms *cannot be told apart*. Intervals are not adjusted.")
    smallest = 2 / (compare.N_BOOT + 1)  # every draw on one side
    if counts and max(counts.values()) * smallest >= 0.05:
        text += (f" With {compare.N_BOOT:,} draws the smallest p-value is {smallest:.4f}, so a table of "
                 f"{max(counts.values())} comparisons cannot reach 0.05 after Holm's correction: name fewer "
                 f"baselines in compare_to.")
    return text


def _unit_text(unit: dict | None) -> str:
    if unit is None:
        return "Bootstrap unit: none (no cell kept its test predictions)."
    if unit["unit"] == "patient":
        return (f"Bootstrap unit: the patient. The test split of seed {unit['seed']} holds {unit['images']} "
                f"images of {unit['patients']} patients; images of one patient are not independent, so the "
                f"bootstraps draw a patient's images together (a cluster bootstrap).")
    if unit["patients"] is None:
        return ("Bootstrap unit: the test image (the stores holding the test images' patient ids are gone, so "
                "images of one patient cannot be drawn together).")
    return (f"Bootstrap unit: the test image. The data gives every test image of seed {unit['seed']} its own "
            f"patient id ({unit['images']} images, {unit['patients']} patients), so images are patients.")


def _interval_text(interval: dict | None) -> str:
    if interval is None or interval.get("low") is None:
        return "n/a"
    return f"{interval['low']:.3f} to {interval['high']:.3f}"


def _results_lines(spec: Spec, done: dict, intervals: dict, unit: dict | None, figures: dict[str, str]) -> list[str]:
    """The paper's table: mean ± std over seeds of each measure and the headline measure's interval."""
    lines = [f"## Results ({spec.headline} is the headline measure)", "",
             "| arm | classifier | seeds | " + " | ".join(spec.measures) + f" | 95% interval of {spec.headline} |",
             "|---|---|---:|" + "---:|" * len(spec.measures) + "---|"]
    for (arm_key, clf_key), members in done.items():
        lines.append(f"| {spec.arm(arm_key).label} | {_clf_label(spec, clf_key)} | {len(members)} | " +
                     " | ".join(_cell_text(group_interval(members, m)) for m in spec.measures) +
                     f" | {_interval_text(intervals.get((arm_key, clf_key)))} |")
    what = (unit or {}).get("unit", "image")
    text = (f"Mean ± standard deviation over seeds. The interval is the 95% percentile interval of a bootstrap "
            f"that resamples the seeds and the test {what}s of each seed drawn (1 seed: the test {what}s alone, "
            f"which covers test-set noise only); it stays inside [0, 1].")
    if any(i is not None and i.get("method") == "logit t" for i in intervals.values()):
        text += " Arms whose cells kept no predictions get a t interval on the logit scale instead."
    lines += ["", text, ""]
    if "headline" in figures:
        lines += [f"![{spec.headline}]({figures['headline']})", ""]
    return lines


def _probability_lines(spec: Spec, done: dict, comps: list[dict], first: Row | None,
                       figures: dict[str, str]) -> list[str]:
    """AUC, AUPRC, ECE and Brier per arm, their definitions, the paired AUC/AUPRC comparisons and the
    reliability diagrams."""
    if first is None:
        return []
    names = list(PROBABILITY_MEASURES)
    lines = ["## Threshold-free measures and calibration", "",
             "| arm | classifier | seeds | " + " | ".join(names) + " |", "|---|---|---:|" + "---:|" * len(names)]
    for (arm_key, clf_key), members in done.items():
        lines.append(f"| {spec.arm(arm_key).label} | {_clf_label(spec, clf_key)} | {len(members)} | " +
                     " | ".join(_cell_text(group_interval(members, m)) for m in names) + " |")
    positive = spec.positive if spec.positive in first.class_names else None
    binary = positive is not None and len(first.class_names) == 2
    about = f"of {positive} against the rest" if positive else "the macro mean of the one-vs-rest values"
    lines += ["", f"Mean ± standard deviation over seeds (n/a: a cell kept no class probabilities). auc: ROC-AUC "
                  f"{about}; auprc: average precision {about}; ece: expected calibration error over 15 equal-width "
                  f"bins of the " + (f"{positive} probability" if binary else "top-class confidence") +
              "; brier: Brier score " + (f"of the {positive} probability (0 to 1)." if binary else
                                         "summed over the classes (0 to 2)."), ""]
    free = [c["threshold_free"][m] for c in comps for m in c.get("threshold_free", {})]
    if free:
        lines += ["Paired comparisons of the threshold-free measures, by the same rule as the verdicts above "
                  "(Holm's correction over each table's comparisons of the measure):", ""]
        lines += [f"- {c['sentence']}" for c in free] + [""]
    shown = [f"![reliability {key[len('reliability-'):]}]({path})" for key, path in figures.items()
             if key.startswith("reliability-")]
    if shown:
        lines += ["Reliability diagrams (every seed's test images):", "", " ".join(shown), ""]
    return lines


def _training_lines(rows: list[Row], figures: dict[str, str]) -> list[str]:
    lines = ["## Training sets (seed 0)", "", "| arm | training images per class | of which synthetic |",
             "|---|---|---|"]
    seen = set()
    for r in rows:
        if r.status == "done" and r.cell.seed == 0 and r.cell.arm.key not in seen:
            seen.add(r.cell.arm.key)
            lines.append(f"| {r.cell.arm.label} | {_counts(r.counts['train'])} | {_counts(r.counts['synthetic'])} |")
    lines.append("")
    lines += [f"![{key}]({path})" for key, path in figures.items() if key.startswith("samples-")]
    return lines + [""]


def _filter_lines(spec: Spec, out: Path | None) -> list[str]:
    """Per filter arm and seed: how many synthetic images were made, kept and rejected per class (the
    store's record)."""
    if out is None:
        return []
    layout = Layout(out)
    lines = []
    for arm in (a for a in spec.arms if a.filter is not None):
        for seed in range(spec.seeds):
            path = layout.store_record(layout.store(arm, seed))
            try:
                record = json.loads(path.read_text()).get("filter")
            except (OSError, ValueError):
                record = None
            if not record:
                continue
            counts = "; ".join(f"made {c['made']} {name} images, kept {c['kept']} of {c['wanted']} wanted "
                               f"({c['below_confidence']} below confidence, {c['near_copies']} near-copies)"
                               for name, c in record["classes"].items())
            rules = ", ".join(f"{k} {v}" for k, v in arm.filter.items())
            lines.append(f"- {escape(arm.label)} ({rules}), seed {seed}: {counts}.")
    if not lines:
        return []
    return ["## Filtered synthetic images", "",
            "Candidates scored by the seed's feature network (trained on its real training images), kept at the "
            "intended class's probability >= confidence, near-copies of training images dropped (copies drop); "
            "more made until the count was met or cap candidates per wanted image were made:", "", *lines, ""]


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
                 figures: dict[str, str], loader: compare.Predictions) -> list[str]:
    """Per-class F1 (mean over seeds, with its interval) and the confusion matrices summed over seeds."""
    lines: list[str] = []
    if first is not None:
        classes = first.class_names
        lines += ["## Per-class F1 (mean over seeds, 95% interval)", "",
                  "| arm | classifier | " + " | ".join(classes) + " |", "|---|---|" + "---:|" * len(classes)]
        for (arm_key, clf_key), members in done.items():
            cells = []
            for i, c in enumerate(classes):
                interval = compare.arm_interval(spec, members, "f1", loader, i, per_class=True)
                mean = np.mean([r.per_class[c]["f1"] for r in members])
                cells.append(f"{mean:.3f}" + ("" if interval is None or interval.get("low") is None else
                                              f" ({interval['low']:.2f} to {interval['high']:.2f})"))
            lines.append(f"| {spec.arm(arm_key).label} | {_clf_label(spec, clf_key)} | " + " | ".join(cells) + " |")
        lines += ["", "The interval: the bootstrap of the results table (seeds and test units; 1 seed: test "
                      "units alone).", "",
                  "## Confusion matrices (summed over seeds; rows true, columns predicted)", ""]
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


def _resolution(spec: Spec, intervals: dict, comps: list[dict]) -> str:
    widths = [i["half_width"] for i in intervals.values() if i is not None and i.get("half_width") is not None]
    pairs = [(c.get("seed_bootstrap") or c.get("bootstrap") or {}).get("half_width") for c in comps]
    pairs = [w for w in pairs if w is not None]
    parts = []
    if widths:
        parts.append(f"the 95% interval of an arm's mean {spec.headline} has a median half-width of "
                     f"±{float(np.median(widths)):.3f}")
    if pairs:
        parts.append(f"the paired bootstrap interval of a difference between two arms has a median half-width of "
                     f"±{float(np.median(pairs)):.3f}")
    if not parts:
        return "This run gives no interval: it cannot tell arms apart."
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
def headline_figure(spec: Spec, done: dict[tuple[str, str], list[Row]], path: Path,
                    intervals: dict[tuple[str, str], dict | None] | None = None) -> Path:
    """The headline measure's mean per arm (and classifier) with its interval (:func:`compare.arm_interval`,
    or the group's t interval where ``intervals`` has none)."""
    from synthaug.pipeline.report import pyplot, save_figure

    plt = pyplot()
    arms = list(dict.fromkeys(k[0] for k in done))
    clfs = list(dict.fromkeys(k[1] for k in done))
    width = 0.8 / max(1, len(clfs))
    fig, ax = plt.subplots(figsize=(1.6 + 1.3 * len(arms), 3.8))
    for j, clf in enumerate(clfs):
        xs, means, below, above = [], [], [], []
        for i, arm in enumerate(arms):
            mean = group_interval(done.get((arm, clf), []), spec.headline)
            if mean is None:
                continue
            interval = (intervals or {}).get((arm, clf)) or mean
            xs.append(i + (j - (len(clfs) - 1) / 2) * width)
            means.append(mean["mean"])
            below.append(0.0 if interval.get("low") is None else max(0.0, mean["mean"] - interval["low"]))
            above.append(0.0 if interval.get("high") is None else max(0.0, interval["high"] - mean["mean"]))
        ax.bar(xs, means, width * 0.9, yerr=[below, above], capsize=4, label=_clf_label(spec, clf))
    ax.set_xticks(range(len(arms)), [spec.arm(a).label for a in arms], rotation=20, ha="right")
    ax.set_ylabel(spec.headline)
    ax.set_ylim(0, 1.05)
    ax.set_title(f"{spec.name} ({spec.preset}): mean over seeds, 95% bootstrap interval")
    if len(clfs) > 1:
        ax.legend(fontsize=8)
    return save_figure(fig, path)


def reliability_figures(spec: Spec, done: dict[tuple[str, str], list[Row]], out: Path,
                        loader: compare.Predictions) -> dict[str, str]:
    """A reliability diagram per arm and classifier whose cells all kept class probabilities."""
    from synthaug.experiments.figures import reliability_diagram
    from synthaug.pipeline.metrics import calibration_bins, expected_calibration_error

    layout = Layout(out)
    figures = {}
    for (arm_key, clf_key), members in done.items():
        tests = [loader.of(r) for r in members]
        if any(t is None or t.probabilities is None for t in tests):
            continue
        y = np.concatenate([t.y for t in tests])
        probabilities = np.concatenate([t.probabilities for t in tests])
        names = members[0].class_names
        positive = names.index(spec.positive) if spec.positive in names else None
        path = layout.reliability_figure(arm_key, clf_key)
        title = f"{spec.arm(arm_key).label}, {_clf_label(spec, clf_key)} ({len(members)} seeds pooled)"
        reliability_diagram(calibration_bins(y, probabilities, positive), path, title=title,
                            ece=expected_calibration_error(y, probabilities, positive))
        figures[f"reliability-{arm_key}--{clf_key}"] = layout.link(path)
    return figures


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
    loader = compare.Predictions()
    spec, rows = collect(out, loader)
    _, saved = load_experiment(out)
    done = groups(rows)
    intervals = {group: compare.arm_interval(spec, members, spec.headline, loader) for group, members in done.items()}
    figures: dict[str, str] = {}
    if done:
        headline_figure(spec, done, layout.headline_figure, intervals)
        figures["headline"] = layout.link(layout.headline_figure)
        for (arm_key, clf_key), members in done.items():
            path = layout.confusion_figure(arm_key, clf_key)
            plot_confusion(sum(r.confusion for r in members), members[0].class_names, path,
                           title=f"{arm_key}, {clf_key}")
            figures[f"{arm_key}--{clf_key}"] = layout.link(path)
        figures.update(sample_grids(spec, out))
        figures.update(reliability_figures(spec, done, out, loader))
    comps = compare.comparisons(spec, done, loader)
    with atomic_path(layout.results_csv) as tmp:
        tmp.write_text(results_csv(spec, rows))
    with atomic_path(layout.comparisons_json) as tmp:
        tmp.write_text(json.dumps(comps, indent=2, default=str))
    if clock is not None:  # only report.md is left to write: the report's stage is all but done
        clock.record("report", time.perf_counter() - started)
        saved = {**saved, "stages": clock.stages, "seconds": clock.stop()}
    with atomic_path(layout.report_md) as tmp:
        tmp.write_text(report_markdown(spec, rows, saved, comps, figures, out, loader=loader, intervals=intervals))
    return layout.report_md
