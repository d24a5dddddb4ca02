"""Rewrite the measured tables in docs/*.md from a run's own files.

Every measured table in docs/ sits between two marker lines::

    <!-- results:NAME begin -->
    Measured at commit abc1234 on 2026-11-23 (2 CPU cores) by `docs/results/SCRIPT.sh`.

    | the table |
    <!-- results:NAME end -->

NAME starts with the name of the script that measures it (``demo-table`` -> ``docs/results/demo.sh``).
The scripts run the command the page shows and then call this helper, which replaces everything
between the markers (a "Stale:" note included) with the commit line and the table made from the
run's files: ``results.csv``, ``cells/*/cell.json``, ``comparisons.json`` (``synthaug experiment run``
and ``synthaug demo``), ``quality.json`` (``synthaug quality``), ``measures.json`` (``synthaug fit``).
Text outside the markers is left as it is, and the same run gives the same page byte for byte.

    python docs/results/tables.py stamp                       # JSON: commit, dirty, date, cores (now)
    python docs/results/tables.py record RUN STAMP            # RUN/docs-results.json := STAMP
    python docs/results/tables.py write FAMILY RUN PAGE       # rewrite FAMILY's tables in PAGE

The commit line comes from ``RUN/docs-results.json``, written by the script when the run started; a
run without it (made by hand) gets the current commit, the date of its newest file and this machine.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parents[2]
STAMP_FILE = "docs-results.json"
MINUS = "\u2212"


class Refused(Exception):
    """A one-line error for the user (exit 2)."""


# ---- provenance ----------------------------------------------------------------------------------
def stamp() -> dict[str, Any]:
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()

    try:
        commit = git("rev-parse", "--short", "HEAD")
        dirty = bool(git("status", "--porcelain", "--untracked-files=no"))
    except (OSError, subprocess.CalledProcessError):
        commit, dirty = "unknown", False
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {"commit": commit, "dirty": dirty, "date": dt.datetime.now(dt.timezone.utc).date().isoformat(),
            "cores": cores, "cpu": cpu_model()}


def cpu_model() -> str | None:
    """The processor's model name: the same code and seed train to other figures on another CPU (its
    vector kernels sum in another order), so a measured table names the processor it came from."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def provenance(run: Path) -> dict[str, Any]:
    path = run / STAMP_FILE
    if path.is_file():
        return json.loads(path.read_text())
    found = stamp()
    newest = max((p.stat().st_mtime for p in run.rglob("*") if p.is_file()), default=None)
    if newest is not None:
        found["date"] = dt.datetime.fromtimestamp(newest, dt.timezone.utc).date().isoformat()
    return found


def commit_line(info: dict[str, Any], script: str) -> str:
    commit = info["commit"] + (" + uncommitted changes" if info.get("dirty") else "")
    cores = info.get("cores")
    cpu = f", {info['cpu']}" if info.get("cpu") else ""
    where = f" ({cores} CPU {'core' if cores == 1 else 'cores'}{cpu})" if cores else ""
    return f"Measured at commit {commit} on {info['date']}{where} by `docs/results/{script}.sh`."


# ---- number formats (the pages' own) --------------------------------------------------------------
def fixed(value: Any, digits: int, scale: float = 1.0, suffix: str = "") -> str:
    return "—" if value is None else f"{scale * float(value):.{digits}f}{suffix}"


def signed(value: float) -> str:
    """+0.009 / −0.025 (a typographic minus; never −0.000)."""
    x = round(float(value), 3) + 0.0
    return f"{x:+.3f}".replace("-", MINUS)


def with_error(value: Any, error: Any) -> str:
    """``value ± error`` to the error's two significant figures (quality.md's rule)."""
    sys.path.insert(0, str(ROOT))
    from synthaug.assess.report import with_error as rule

    return rule({"v": value, "e": error}, "v", "e")


def bold_max(cells: list[list[str]], column: int, values: list[float | None]) -> None:
    known = [v for v in values if v is not None]
    if known:
        best = values.index(max(known))
        cells[best][column] = f"**{cells[best][column]}**"


def bold_best(cells: list[list[str]], column: int, values: list[float], lowest: bool) -> None:
    best = values.index(min(values) if lowest else max(values))
    cells[best][column] = f"**{cells[best][column]}**"


def table(header: list[str], align: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "|".join(align) + "|",
            *("| " + " | ".join(r) + " |" for r in rows)]


# ---- an experiment directory (synthaug experiment run / synthaug demo) ----------------------------
def layout(run: Path):
    """The experiment directory's one owner of its paths (synthaug.experiments.layout)."""
    sys.path.insert(0, str(ROOT))
    from synthaug.experiments.layout import Layout

    return Layout(run)


def read_results(run: Path) -> list[dict[str, str]]:
    path = layout(run).results_csv
    if not path.is_file():
        raise Refused(f"{path}: missing (the run did not finish; run the script again)")
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def arm_groups(run: Path) -> dict[str, list[dict[str, str]]]:
    """Per arm (in results.csv's order), the done rows of its first classifier that ran."""
    groups: dict[str, dict[str, list[dict[str, str]]]] = {}
    for row in read_results(run):
        if row["status"] == "done":
            groups.setdefault(row["arm"], {}).setdefault(row["classifier"], []).append(row)
    return {arm: next(iter(by_clf.values())) for arm, by_clf in groups.items()}


def mean_std(rows: list[dict[str, str]], measure: str) -> tuple[float, float | None]:
    values = [float(r[measure]) for r in rows]
    mean = sum(values) / len(values)
    if len(values) < 2:
        return mean, None
    return mean, math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))


def mean_text(rows: list[dict[str, str]], measure: str) -> str:
    mean, std = mean_std(rows, measure)
    return f"{mean:.3f}" if std is None else f"{mean:.3f} ± {std:.3f}"


def report_intervals(run: Path, measure: str) -> dict[tuple[str, str], dict | None]:
    """The report's interval of each (arm, classifier)'s mean ``measure``: the bootstrap over seeds and
    test units (synthaug.experiments.compare.arm_interval), inside [0, 1] for a proportion."""
    sys.path.insert(0, str(ROOT))
    from synthaug.experiments import compare
    from synthaug.experiments.report import collect, groups

    spec, rows = collect(run)
    loader = compare.Predictions()
    return {group: compare.arm_interval(spec, members, measure, loader) for group, members in groups(rows).items()}


def interval_text(found: dict | None) -> str:
    if not found or found.get("low") is None:
        return "n/a"
    return f"{found['low']:.3f} to {found['high']:.3f}"


def ordered(groups: dict[str, Any], labels: dict[str, str]) -> list[tuple[str, str]]:
    """(arm, row label): the page's arms in the page's order, then any other arm under its own label."""
    keys = [k for k in labels if k in groups] + [k for k in groups if k not in labels]
    return [(k, labels.get(k) or groups[k][0]["arm_label"]) for k in keys]


def seeds_table(run: Path, labels: dict[str, str], columns: list[tuple[str, str]], headline: str,
                interval_header: str) -> list[str]:
    """liang2021 / quan2021: arm | mean ± std per measure (the headline's best in bold) | the report's
    interval of the headline (bootstrap over seeds and test units)."""
    groups = arm_groups(run)
    arms = ordered(groups, labels)
    intervals = report_intervals(run, headline)
    cells = [[label, *(mean_text(groups[k], m) for _, m in columns),
              interval_text(intervals.get((k, groups[k][0]["classifier"])))] for k, label in arms]
    column = 1 + [m for _, m in columns].index(headline)
    bold_max(cells, column, [mean_std(groups[k], headline)[0] for k, _ in arms])
    return table(["arm", *(h for h, _ in columns), interval_header], ["---", *["---:"] * len(columns), "---"], cells)


LIANG_LABELS = {"unbalanced": "unbalanced", "original": "original (covid duplicated)",
                "augment": "augment (flip + 5° rotation)", "duplicate_no_augment": "duplicate, no augmentation",
                "weighted_loss": "class-weighted loss", "balanced_sampler": "class-balanced sampler",
                "pix2pix": "pix2pix (normal → covid)", "ddpm-guidance1": "ddpm, guidance 1",
                "ddpm-guidance2": "ddpm, guidance 2", "ddpm-guidance4": "ddpm, guidance 4"}
QUAN_LABELS = {"xray_only": "X-ray only", "duplicate": "duplicate", "augment": "augment (flip + 5° rotation)",
               "weighted_loss": "class-weighted loss", "balanced_sampler": "class-balanced sampler",
               "drr": "+DRR (one per CT volume)", "covidgan": "+COVID GAN (acgan)",
               "xpgan": "+XPGAN images, fresh DenseNet121", "xpgan_c": "XPGAN, its jointly trained C",
               "ddpm": "+ddpm (guidance 2)"}
QUAN_SHORT = {"drr": "+DRR", "covidgan": "acgan", "xpgan": "XPGAN images", "xpgan_c": "XPGAN's C", "ddpm": "ddpm"}
LIANG_SHORT = {"pix2pix": "pix2pix", "ddpm-guidance1": "ddpm, guidance 1", "ddpm-guidance2": "ddpm, guidance 2",
               "ddpm-guidance4": "ddpm, guidance 4"}


def liang2021_table(run: Path) -> list[str]:
    return seeds_table(run, LIANG_LABELS, [("accuracy", "accuracy"), ("macro-F1", "macro_f1"),
                                           ("covid precision", "precision"), ("covid recall", "recall"),
                                           ("covid F1", "f1")], "macro_f1", "95% interval of macro-F1")


def quan2021_table(run: Path) -> list[str]:
    return seeds_table(run, QUAN_LABELS, [("covid precision", "precision"), ("covid recall", "recall"),
                                          ("covid F1", "f1"), ("accuracy", "accuracy")], "f1", "95% interval of F1")


def comparisons_table(run: Path, short: dict[str, str], measure_header: str, only: tuple[str, ...] = ()) -> list[str]:
    """Every synthesizer arm against every baseline the spec named (comparisons.json): the mean
    difference of the headline over the seeds with its seed x test-unit bootstrap interval, the
    Holm-adjusted p-value over the run's pairs (all of them, also where ``only`` keeps the rows of some
    arms), and the verdict."""
    path = layout(run).comparisons_json
    if not path.is_file():
        raise Refused(f"{path}: missing (the run did not finish; run the script again)")
    found = [c for c in json.loads(path.read_text()) if c.get("verdict") is not None
             and (not only or c["arm"] in only)]
    if only and not found:
        raise Refused(f"{path}: no comparison of the arms {', '.join(only)} (the run did not finish?)")
    order = list(short)
    found.sort(key=lambda c: (order.index(c["arm"]) if c["arm"] in order else len(order), c["arm"],
                              c["baseline"][0] if c.get("baseline") else ""))
    rows = []
    for c in found:
        interval = c.get("seed_bootstrap") or c.get("seed") or {}
        diff, low, high = interval.get("diff"), interval.get("low"), interval.get("high")
        span = f"{signed(diff)} ({signed(low)} to {signed(high)})" if low is not None else signed(diff)
        seed = c.get("seed") or {}
        over_seeds = f"{signed(seed['low'])} to {signed(seed['high'])}" if seed.get("low") is not None else "n/a"
        p = c.get("p_holm")
        rows.append([short.get(c["arm"], c["arm"]), (c.get("baseline") or ["?"])[0], span, over_seeds,
                     "n/a" if p is None else f"{p:.3f}", c["verdict"]])
    return table(["synthesizer", "baseline", f"{measure_header} difference (seed x test-unit bootstrap)",
                  "t interval over seeds", "Holm p", "verdict"], ["---", "---", "---", "---", "---:", "---"], rows)


def quan2021_comparisons(run: Path) -> list[str]:
    return comparisons_table(run, QUAN_SHORT, "F1")


def liang2021_comparisons(run: Path) -> list[str]:
    return comparisons_table(run, LIANG_SHORT, "macro-F1")


# docs/experiments.md: the recipes grid ---------------------------------------------------------------
RECIPES_LABELS: dict[str, str] = {}  # every arm under the report's own label


def recipes_table(run: Path) -> list[str]:
    return seeds_table(run, RECIPES_LABELS, [("accuracy", "accuracy"), ("macro-F1", "macro_f1"),
                                             ("covid recall", "recall"), ("covid F1", "f1")],
                       "macro_f1", "95% interval of macro-F1")


def recipes_ways(run: Path) -> list[str]:
    """report.md's ranked ways of using synthesis, as the report wrote it (its table and sentence)."""
    path = layout(run).report_md
    if not path.is_file():
        raise Refused(f"{path}: missing (the run did not finish; run the script again)")
    text = path.read_text(encoding="utf-8")
    marker = "## The ways of using synthesis, ranked"
    if marker not in text:
        raise Refused(f"{path}: no section '{marker}'")
    body = text.split(marker, 1)[1].split("\n## ", 1)[0].strip("\n").splitlines()
    return body


# docs/ddpm.md: the ddpm arms of the liang2021 and quan2021 runs ----------------------------------
LIANG_DDPM = ("ddpm-guidance1", "ddpm-guidance2", "ddpm-guidance4")


# docs/results/ddpm.sh runs both specs into RUN/liang2021 and RUN/quan2021.
def ddpm_liang2021_comparisons(run: Path) -> list[str]:
    return comparisons_table(run / "liang2021", LIANG_SHORT, "macro-F1", only=LIANG_DDPM)


def ddpm_liang2021_quality(run: Path) -> list[str]:
    return demo_quality(run / "liang2021")


def ddpm_quan2021_comparisons(run: Path) -> list[str]:
    return comparisons_table(run / "quan2021", QUAN_SHORT, "F1", only=("ddpm",))


def ddpm_quan2021_quality(run: Path) -> list[str]:
    return demo_quality(run / "quan2021")


def ddpm_times(run: Path) -> list[str]:
    return ddpm_time(run / "liang2021", "liang2021") + ddpm_time(run / "quan2021", "quan2021")[2:]


def ddpm_time(run: Path, spec: str) -> list[str]:
    """Seconds of each ddpm fit and of each ddpm store's sampling (experiment.json's stages)."""
    path = layout(run).experiment_json
    if not path.is_file():
        raise Refused(f"{path}: missing (the run did not finish; run the script again)")
    stages = json.loads(path.read_text()).get("stages") or []
    found = [s for s in stages if s["name"].startswith(("fit ddpm-", "balance ddpm")) and s.get("seconds") is not None]
    if not found:
        raise Refused(f"{path}: no ddpm stage recorded (the run did not finish; run the script again)")
    rows = [[spec, f"`{s['name']}`", f"{s['seconds']:.0f} s ({s['seconds'] / 60:.1f} min)"] for s in found]
    return table(["spec", "stage", "wall time"], ["---", "---", "---:"], rows)


# the demo --------------------------------------------------------------------------------------
MIN_SHOWN = 4  # synthaug.experiments.quality.MIN_SHOWN
SYNTHETIC_WORDS = {"duplicate": "copies", "augment": "flipped/rotated", "pix2pix": "translated from normal"}


def images_per_class(counts: dict[str, Any], synthesizer: str) -> str:
    train, synthetic = counts["train"], counts["synthetic"]
    sizes = set(train.values())
    text = f"{sizes.pop()} each" if len(sizes) == 1 and len(train) > 1 else \
        ", ".join(f"{c} {n}" for c, n in train.items())
    # a class topped up by a handful of images is left out, as in the report's quality section (the
    # demo's normal class gets 1 synthetic image: "135 each (113 covid copies)")
    made = ", ".join(f"{n} {c}" for c, n in synthetic.items() if n >= MIN_SHOWN)
    if made:
        text += f" ({made} {SYNTHETIC_WORDS.get(synthesizer, 'synthetic')})"
    return text


def demo_table(run: Path) -> list[str]:
    from synthaug.experiments.layout import CELL_FILE

    groups = arm_groups(run)
    rows = []
    for arm, members in groups.items():
        row = members[0]
        cell = layout(run).cells_dir / row["cell"] / CELL_FILE
        counts = json.loads(cell.read_text())["train_counts"]
        rows.append([row["arm_label"], images_per_class(counts, row["synthesizer"]),
                     *(fixed(row[m], 3) for m in ("accuracy", "macro_f1", "recall", "precision"))])
    return table(["training set", "images per class", "accuracy", "macro-F1", "covid recall", "covid precision"],
                 ["---", "---", "---:", "---:", "---:", "---:"], rows)


def demo_time(run: Path) -> list[str]:
    """The run's stages and total wall time: the report's Time section without its heading."""
    from synthaug.experiments.report import time_lines
    path = layout(run).experiment_json
    saved = json.loads(path.read_text())
    if not saved.get("stages"):
        raise Refused(f"{path}: no stages recorded (the run did not finish; run the script again)")
    return time_lines([], saved)[2:-1]


# ---- quality.json (synthaug quality) --------------------------------------------------------------
REFERENCE = "real (train)"
REFERENCE_LABEL = "real training images (reference)"


def quality_rows(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        raise Refused(f"{path}: missing (the run did not finish; run the script again)")
    return json.loads(path.read_text())["table"]


def class_row(rows: list[dict[str, Any]], class_name: str, reference: bool) -> dict[str, Any] | None:
    return next((r for r in rows if r["class"] == class_name and (r["synthesizer"] == REFERENCE) == reference), None)


def copies(row: dict[str, Any], reference: bool) -> list[str]:
    if reference:
        return ["—", "—"]
    return [fixed(row.get("copies_pixels"), 0, 100, "%"), fixed(row.get("near_copies_pixels"), 0, 100, "%")]


def auc_text(row: dict[str, Any]) -> str:
    return f"{fixed(row.get('auc'), 2)} [{fixed(row.get('auc_low'), 2)}, {fixed(row.get('auc_high'), 2)}]"


def demo_quality(run: Path, positive: str = "covid") -> list[str]:
    """The demo report's quality section for the positive class: each arm's synthetic images, then the
    real training images as the reference row (quality/<arm>-seed0/quality.json)."""
    sys.path.insert(0, str(ROOT))
    from synthaug.kit.markdown import escape

    labels = {row["arm"]: row["arm_label"] for row in read_results(run)}
    rows, reference = [], None
    places = layout(run)
    for path in [places.quality_json(key, seed) for key, seed in places.quality_measured() if seed == 0]:
        found = quality_rows(path)
        row = class_row(found, positive, reference=False)
        reference = reference or class_row(found, positive, reference=True)
        if row is not None:
            rows.append((labels.get(path.parent.name[:-len("-seed0")], path.parent.name), row, False))
    if reference is not None:
        rows.append((REFERENCE_LABEL, reference, True))
    cells = [[label, str(r["n"]), *([escape(r["skipped"]), "", "", "", ""] if "skipped" in r else [
              f"{fixed(r.get('fid_inf'), 1)} ± {fixed(r.get('fid_inf_se'), 1)}", fixed(r.get("precision"), 2),
              fixed(r.get("recall"), 2), fixed(r.get("coverage"), 2), auc_text(r)]), *copies(r, ref)]
             for label, r, ref in rows]
    return table(["arm", f"{positive} images", "FID∞ ± se", "precision", "recall", "coverage",
                  "two-sample AUC [95%]", "copies", "near-copies"], ["---"] + ["---:"] * 8, cells)


QUALITY_STORES = ("duplicate", "augment", "pix2pix", "acgan", "drr", "xpgan")


def quality_table(run: Path, positive: str = "covid") -> list[str]:
    """docs/quality.md: every bundled synthesizer's store in one feature space (RUN/quality/<name>/)."""
    rows, reference = [], None
    for name in QUALITY_STORES:
        found = quality_rows(run / "quality" / name / "quality.json")
        row = class_row(found, positive, reference=False)
        reference = reference or class_row(found, positive, reference=True)
        if row is None or "skipped" in row:
            raise Refused(f"{run / 'quality' / name / 'quality.json'}: no measured {positive} row")
        rows.append((name, row, False))
    rows.append((REFERENCE_LABEL, reference, True))
    cells = [[label, str(r["n"]), f"{fixed(r.get('fid_inf'), 1)} ± {fixed(r.get('fid_inf_se'), 1)}",
              f"{fixed(r.get('kid'), 3)} ± {fixed(r.get('kid_std'), 3)}", fixed(r.get("precision"), 2),
              fixed(r.get("recall"), 2), fixed(r.get("density"), 2), fixed(r.get("coverage"), 2), auc_text(r),
              *copies(r, ref)] for label, r, ref in rows]
    return table(["synthesizer", f"{positive} images", "FID∞ ± se", "KID ± std", "precision", "recall", "density",
                  "coverage", "two-sample AUC [95%]", "copies (px)", "near-copies (px)"],
                 ["---"] + ["---:"] * 10, cells)


FEATURE_EPOCHS = (2, 6)
DEFAULT_FEATURE_EPOCHS = 2


def quality_feature_epochs(run: Path, classes: tuple[str, ...] = ("covid", "normal")) -> list[str]:
    """docs/quality.md: the reference rows (real training vs real test images) per feature epochs."""
    rows, header = [], ["feature epochs"]
    for epochs in FEATURE_EPOCHS:
        found = quality_rows(run / "quality" / f"epochs-{epochs}" / "quality.json")
        refs = [class_row(found, c, reference=True) for c in classes]
        if len(header) == 1:
            header += [f"{c} ({r['n']}{' training images' if i == 0 else ''}): FID∞ ± se, two-sample AUC"
                       for i, (c, r) in enumerate(zip(classes, refs))]
        label = f"{epochs} (default)" if epochs == DEFAULT_FEATURE_EPOCHS else str(epochs)
        rows.append([label, *(f"{with_error(r.get('fid_inf'), r.get('fid_inf_se'))}, {auc_text(r)}" for r in refs)])
    return table(header, ["---:", *["---"] * len(classes)], rows)


# ---- measures.json (synthaug fit --synth pix2pix on ctsim) ----------------------------------------
def pix2pix_measures(run: Path, target: str = "covid") -> list[str]:
    def measures(name: str) -> dict[str, Any]:
        path = run / name / "measures.json"
        if not path.is_file():
            raise Refused(f"{path}: missing (the fit did not finish; run the script again)")
        return json.loads(path.read_text())["targets"][target]

    residual, plain = measures("residual"), measures("plain")
    found = [residual["model"], plain["model"], plain["identity"]]
    digits = {"l1": 4, "psnr": 2, "ssim": 3}
    labels = ["G(twin), `residual=true`", "G(twin), plain pix2pix output (the paper's)", "identity (the twin itself)"]
    cells = [[label, *(fixed(m[k], d) for k, d in digits.items())] for label, m in zip(labels, found)]
    for column, key in enumerate(digits, start=1):
        bold_best(cells, column, [m[key] for m in found], lowest=key == "l1")
    return table([f"{plain['n']} held-out {target} images", "L1 ↓", "PSNR dB ↑", "SSIM ↑"],
                 ["---", "---:", "---:", "---:"], cells)


# ---- the families: script name -> table name -> maker ---------------------------------------------
FAMILIES: dict[str, dict[str, Callable[[Path], list[str]]]] = {
    "demo": {"demo-table": demo_table, "demo-quality": demo_quality, "demo-time": demo_time},
    "liang2021": {"liang2021-table": liang2021_table, "liang2021-comparisons": liang2021_comparisons},
    "quan2021": {"quan2021-table": quan2021_table, "quan2021-comparisons": quan2021_comparisons},
    "quality": {"quality-table": quality_table, "quality-feature-epochs": quality_feature_epochs},
    "pix2pix": {"pix2pix-measures": pix2pix_measures},
    "recipes": {"recipes-table": recipes_table, "recipes-ways": recipes_ways},
    "ddpm": {"ddpm-time": ddpm_times, "ddpm-liang2021-comparisons": ddpm_liang2021_comparisons,
             "ddpm-liang2021-quality": ddpm_liang2021_quality, "ddpm-quan2021-comparisons": ddpm_quan2021_comparisons,
             "ddpm-quan2021-quality": ddpm_quan2021_quality},
}


def begin(name: str) -> str:
    return f"<!-- results:{name} begin -->"


def end(name: str) -> str:
    return f"<!-- results:{name} end -->"


def replace_block(text: str, name: str, body: list[str], page: Path) -> str:
    lines = text.split("\n")
    for marker in (begin(name), end(name)):
        if lines.count(marker) != 1:
            found = "no" if marker not in lines else "more than one"
            raise Refused(f"{page}: {found} line `{marker}`")
    first, last = lines.index(begin(name)), lines.index(end(name))
    if last < first:
        raise Refused(f"{page}: `{end(name)}` comes before `{begin(name)}`")
    return "\n".join(lines[:first + 1] + body + lines[last:])


def write(family: str, run: Path, page: Path, only: str | None = None) -> list[str]:
    if family not in FAMILIES:
        raise Refused(f"unknown table family {family!r}; families are {', '.join(FAMILIES)}")
    if not page.is_file():
        raise Refused(f"{page}: no such page")
    if not run.is_dir():
        raise Refused(f"{run}: no such run directory")
    makers = FAMILIES[family]
    if only is not None:
        if only not in makers:
            raise Refused(f"{family} makes no table {only!r}; it makes {', '.join(makers)}")
        makers = {only: makers[only]}
    text = page.read_text(encoding="utf-8")
    line = commit_line(provenance(run), family)
    for name, maker in makers.items():
        text = replace_block(text, name, [line, "", *maker(run)], page)
    page.write_text(text, encoding="utf-8")
    return list(makers)


def main(argv: list[str]) -> int:
    try:
        if argv[:1] == ["stamp"] and len(argv) == 1:
            print(json.dumps(stamp()))
        elif argv[:1] == ["record"] and len(argv) == 3:
            Path(argv[1]).mkdir(parents=True, exist_ok=True)
            (Path(argv[1]) / STAMP_FILE).write_text(json.dumps(json.loads(argv[2]), indent=2) + "\n")
        elif argv[:1] == ["write"] and len(argv) in (4, 5):
            names = write(argv[1], Path(argv[2]), Path(argv[3]), argv[4] if len(argv) == 5 else None)
            print(f"{argv[3]}: rewrote {', '.join(names)} from {argv[2]}")
        else:
            print("usage: tables.py stamp | record RUN STAMP | write FAMILY RUN PAGE [TABLE]", file=sys.stderr)
            return 2
    except Refused as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
