"""What ``synthaug quality`` writes for a :class:`~synthaug.assess.run.QualityResult`: one directory,
written under a temporary name and renamed when complete, holding

- ``quality.json``: the result's figures and the flat table (:func:`summary_rows`);
- ``nearest.csv``: every synthetic image's nearest real training image, in features and in pixels;
- ``features/``: the feature network, reusable as ``features=<out>/features``;
- ``figures/``: per synthesizer and class, samples, nearest pairs, distances, a projection, intensities;
- ``quality.md``: all of it in words, the names from the data escaped.

It reads the result's attributes and never imports :mod:`synthaug.assess.run`, which imports this
module (the two arrows would make an import cycle).
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from synthaug.assess.figures import FIGURES_DIR, write_figures
from synthaug.errors import SynthaugError
from synthaug.kit.files import atomic_dir, write_json
from synthaug.kit.markdown import escape  # class and synthesizer names come from folders

JSON_FILE, NEAREST_FILE, MARKDOWN_FILE = "quality.json", "nearest.csv", "quality.md"
FEATURES_DIR = "features"
REFERENCE = "real (train)"
SPACES = ("features", "pixels")
PRDC = ("precision", "recall", "density", "coverage")
# the nearest image's class was added at the end (issue #26): readers by position keep their columns
NEAREST_COLUMNS = ("synthesizer", "class", "row", "origin",
                   "feature_nearest_row", "feature_distance", "feature_mirrored",
                   "pixel_nearest_row", "pixel_distance", "pixel_mirrored", "copy", "near_copy",
                   "feature_nearest_class", "pixel_nearest_class")


def check_output_dir(out: str | Path) -> Path:
    """``out`` if it may be written: absent, empty, or an earlier run's output (which it replaces whole).
    Anything else is refused: replacing it would delete a folder of the user's files."""
    out = Path(out)
    if out.exists() and (not out.is_dir() or (any(out.iterdir()) and not (out / JSON_FILE).is_file())):
        raise SynthaugError(f"{out} exists and is not the output of `synthaug quality` (no {JSON_FILE}); "
                            f"choose another --out")
    return out


def write_quality(result, out: str | Path, *, train, test, figures: bool = True) -> Path:
    """Write ``out`` (see the module docstring); ``train`` / ``test`` are the store's open splits."""
    out = check_output_dir(out)
    rows = summary_rows(result)
    with atomic_dir(out) as tmp:
        write_json(tmp / JSON_FILE, json_ready({**result.to_dict(), "table": rows}))
        write_nearest(tmp / NEAREST_FILE, result, train)
        if result.net is not None:
            result.net.save(tmp / FEATURES_DIR)
        drawn = write_figures(tmp / FIGURES_DIR, result, train, test) if figures else []
        (tmp / MARKDOWN_FILE).write_text(markdown(result, rows, drawn), encoding="utf-8")
    return out


def summary_rows(result) -> list[dict[str, Any]]:
    """One flat row per class for the real reference, then per synthesizer and class (``result`` or its
    ``to_dict()``): the table of quality.md, of docs/quality.md and of the experiment report."""
    data = result.to_dict() if hasattr(result, "to_dict") else result
    rows = [table_row(REFERENCE, name, info["real_train"], info["reference"], None)
            for name, info in data["classes"].items()]
    rows += [table_row(g["synthesizer"], g["class"], g["n"], g["fidelity"], g["memorisation"]) for g in data["groups"]]
    return rows


def table_row(synthesizer: str, class_name: str, n: int, fidelity: Mapping[str, Any],
              memorisation: Mapping[str, Any] | None) -> dict[str, Any]:
    """One flat row. Figures a quality.json from before issue #26 lacks (spreads over subsamples,
    copies of other classes) are left out of its rows rather than invented."""
    row: dict[str, Any] = {"synthesizer": synthesizer, "class": class_name, "n": n}
    for space in SPACES:  # measured whatever the set sizes (one test image suffices)
        if memorisation and space in memorisation:
            found = memorisation[space]
            row[f"copies_{space}"] = found["copies"]
            row[f"near_copies_{space}"] = found["near_copies"]
            for key in ("nearest_other_class", "copies_other_class", "near_copies_other_class"):
                if key in found:
                    row[f"{key}_{space}"] = found[key]
    if "skipped" in fidelity:
        return {**row, "skipped": fidelity["skipped"]}
    two_sample = fidelity["two_sample"]
    row.update(fid=fidelity["fid"]["value"], fid_se=fidelity["fid"]["se"], fid_inf=fidelity["fid_inf"]["value"],
               fid_inf_se=fidelity["fid_inf"]["se"], kid=fidelity["kid"]["value"], kid_std=fidelity["kid"]["std"],
               precision=fidelity["precision"], recall=fidelity["recall"], density=fidelity["density"],
               coverage=fidelity["coverage"], auc=two_sample["auc"], auc_low=two_sample["low"],
               auc_high=two_sample["high"])
    if "std" in fidelity["fid"]:
        row["fid_std"] = fidelity["fid"]["std"]
    row.update({f"{key}_std": value for key, value in fidelity.get("prdc_std", {}).items()})
    if "subsampled" in fidelity:
        row.update(subsample_size=fidelity["subsampled"]["size"], subsamples=fidelity["subsampled"]["subsamples"])
    if "skipped" in two_sample:
        row["auc_skipped"] = two_sample["skipped"]
    if "synthetic_groups" in two_sample:
        row.update(auc_real_groups=two_sample["real_groups"], auc_synthetic_groups=two_sample["synthetic_groups"])
    return row


def json_ready(value: Any) -> Any:
    """``value`` as plain JSON: numpy scalars (np.str_ names too) and arrays unwrapped, tuples as lists,
    non-finite floats as null (strict JSON readers refuse NaN), anything else as its text."""
    if isinstance(value, Mapping):
        return {str(key): json_ready(item) for key, item in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [json_ready(item) for item in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, str):
        return str(value)  # a str subclass (np.str_ unwrapped above, enums) as the plain text
    if value is None or isinstance(value, (bool, int, float)):
        return value
    return str(value)


# ---- nearest.csv ---------------------------------------------------------------------------------
def write_nearest(path: Path, result, train) -> None:
    origins = np.asarray(train.origin).astype(str)
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(NEAREST_COLUMNS)
        for group in result.groups:
            found = [group.memorisation.get(space) for space in SPACES]
            pixels = group.memorisation.get("pixels")
            for k, row in enumerate(group.rows):
                cells = [str(group.synthesizer), str(group.class_name), int(row), origins[row]]
                for memo in found:  # empty cells where the class had no real images to compare with
                    cells += ["", "", ""] if memo is None else [
                        int(memo["nearest_row"][k]), f"{memo['synthetic_distance'][k]:.6g}",
                        bool(memo["mirrored"][k])]
                cells += ["", ""] if pixels is None else [
                    bool(pixels["synthetic_distance"][k] < pixels["copy_threshold"]),
                    bool(pixels["synthetic_distance"][k] < pixels["near_threshold"])]
                cells += ["" if memo is None else str(memo["nearest_class"][k]) for memo in found]
                writer.writerow(cells)


# ---- figures -------------------------------------------------------------------------------------
# ---- quality.md ----------------------------------------------------------------------------------
def number(value: Any, digits: int) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if isinstance(value, float) and math.isinf(value):
        return "∞" if value > 0 else "-∞"  # the PSNR of identical images
    return f"{value:.{digits}f}"


def percent(value: Any) -> str:
    return "–" if value is None else f"{100 * value:.0f} %"


def decimals(value: Any, figures: int) -> int:
    """Decimal places that show ``value`` to ``figures`` significant figures (0 to 6)."""
    if value is None or not math.isfinite(value) or value == 0:
        return 0
    return min(max(figures - 1 - math.floor(math.log10(abs(value))), 0), 6)


def with_error(figures: Mapping[str, Any], key: str, error: str) -> str:
    """``value ± error``, both to the precision of the error (its two significant figures): FIDs run
    from hundredths to hundreds with the feature network's scale."""
    value, spread = figures.get(key), figures.get(error)
    measured = spread is not None and math.isfinite(spread) and spread > 0
    places = decimals(spread, 2) if measured else decimals(value, 3)
    return f"{number(value, places)} ± {number(spread, places)}"


def interval(value: Any, low: Any, high: Any) -> str:
    return f"{number(value, 2)} [{number(low, 2)}, {number(high, 2)}]"


TABLE_HEADER = ("synthesizer", "class", "n", "equal n", "FID ± se", "FID∞ ± se", "KID ± std",
                *(f"{name} ± std" for name in PRDC), "two-sample AUC [95 %]", "copies (pixels)",
                "near-copies (pixels)", "copies (features)", "near-copies (features)",
                "nearest of another class (pixels)", "near-copies of another class (pixels)")


def spread(row: Mapping[str, Any], key: str) -> str:
    """``mean ± std over subsamples``; the figure alone when the sets were used whole (of equal size,
    or a row from before the subsampling)."""
    std = row.get(f"{key}_std")
    whole = std is None or row.get("subsamples") == 1
    return number(row[key], 2) + ("" if whole else f" ± {number(std, 2)}")


def table_cells(row: Mapping[str, Any]) -> list[str]:
    head = [escape(row["synthesizer"]), escape(row["class"]), str(row["n"])]
    if "skipped" in row:
        return head + [f"skipped: {escape(row['skipped'])}"] + [""] * (len(TABLE_HEADER) - 4)
    return head + [str(row.get("subsample_size", "–")), with_error(row, "fid", "fid_se"),
                   with_error(row, "fid_inf", "fid_inf_se"), with_error(row, "kid", "kid_std"),
                   *(spread(row, k) for k in PRDC),
                   interval(row["auc"], row["auc_low"], row["auc_high"]) if "auc_skipped" not in row
                   else f"skipped: {escape(row['auc_skipped'])}",
                   *(percent(row.get(f"{kind}_{space}")) for space in ("pixels", "features")
                     for kind in ("copies", "near_copies")),
                   percent(row.get("nearest_other_class_pixels")), percent(row.get("near_copies_other_class_pixels"))]


def features_words(features: Mapping[str, Any]) -> str:
    text = (f"Features: the {features.get('dim')} inputs of the last linear layer of "
            f"{escape(features.get('network'))} on images resized to {features.get('size')} px "
            f"({escape(features.get('source'))}).")
    trained = features.get("trained_on")
    if trained:
        text += (f" It was trained for {trained.get('epochs')} epoch(s) on {trained.get('images')} real training "
                 f"images of {escape(trained.get('store'))} (never on synthetic images), so FIDs and the other "
                 f"feature-space figures are only comparable between stores that share that real training split.")
    elif features.get("weights_sha256"):
        text += (f" Weights file sha256 {str(features['weights_sha256'])[:12]}…: figures are comparable between "
                 f"stores measured with the same file.")
    return text


def memorisation_words(memorisation: Mapping[str, Any], class_name: str) -> str:
    pixels = memorisation.get("pixels")
    if pixels is None:
        return "memorisation not measured (the class lacks real test images, or the store real training images)"
    if pixels["copies"] > 0:
        text = f"{percent(pixels['copies'])} of the synthetic images are copies of training images"
    elif pixels["near_copies"] > 0:
        text = f"{percent(pixels['near_copies'])} of the synthetic images are near-copies of training images"
    else:
        text = "no synthetic image lies closer to a training image than real test images do"
    features = memorisation.get("features")
    text += f" (pixels; {percent(features['copies'])} copies in feature space)" if features else " (pixels)"
    others = {name: count for name, count in pixels.get("nearest_classes", {}).items() if name != class_name}
    if others:
        named = ", ".join(f"{escape(name)} {count}" for name, count in others.items())
        text += (f"; the nearest training image is of another class for {percent(pixels['nearest_other_class'])} "
                 f"of them ({named}), {percent(pixels['near_copies_other_class'])} near-copies of another "
                 f"class's image")
    return text


def two_sample_words(fidelity: Mapping[str, Any]) -> str:
    if "skipped" in fidelity:
        return f"fidelity not measured: {escape(fidelity['skipped'])}"
    test = fidelity["two_sample"]
    if "skipped" in test:
        return f"two-sample test not run: {escape(test['skipped'])}"
    figures = interval(test["auc"], test["low"], test["high"])
    if test["low"] > 0.5:
        return f"the two-sample test tells them from real test images (AUC {figures})"
    if test["high"] < 0.5:
        return f"the two-sample test scores below chance: it cannot tell them from real test images (AUC {figures})"
    return f"they cannot be told from real test images (AUC interval contains 0.5: {figures})"


def group_words(group, reference: Mapping[str, Any]) -> str:
    parts = [memorisation_words(group.memorisation, group.class_name), two_sample_words(group.fidelity)]
    if "skipped" not in group.fidelity and "skipped" not in reference:
        parts.append(f"FID∞ {with_error(group.fidelity['fid_inf'], 'value', 'se')} against "
                     f"{with_error(reference['fid_inf'], 'value', 'se')} for real training images")
    return f"- **{escape(group.synthesizer)}/{escape(group.class_name)}**: " + "; ".join(parts) + "."


def reference_warnings(result) -> list[str]:
    lines = []
    for name, class_sets in result.classes.items():
        test = class_sets.reference.get("two_sample")
        if test and test.get("low") is not None and test["low"] > 0.5:
            lines.append(f"> **Warning** ({escape(name)}): the two-sample test tells real *training* images from "
                         f"real test images (AUC {interval(test['auc'], test['low'], test['high'])}): the feature "
                         f"network has memorised its training images, and whatever resembles them looks unlike new "
                         f"images. Train it for fewer epochs (`--feature-epochs`).")
    return lines


PAIRED_HEADER = ("SSIM", "PSNR (dB)", "identity SSIM", "identity PSNR (dB)")


def paired_cells(made: Mapping[str, Any], identity: Mapping[str, Any] | None) -> list[str]:
    identity = identity or {}
    return [number(made.get("ssim"), 3), number(made.get("psnr"), 2), number(identity.get("ssim"), 3),
            number(identity.get("psnr"), 2)]


def paired_lines(result) -> list[str]:
    groups = [g for g in result.groups if g.paired]
    lines = []
    if groups:
        lines += ["Synthetic images of a patient who also has a real image of the class, against that image "
                  "(identity: the real image the synthetic one was made from).", "",
                  *markdown_table(("synthesizer", "class", "n", *PAIRED_HEADER),
                                  [[escape(g.synthesizer), escape(g.class_name), str(g.paired["n"]),
                                    *paired_cells(g.paired["synthetic"], g.paired.get("identity"))] for g in groups]),
                  ""]
    checkpoint = result.checkpoint
    if checkpoint is not None:
        measures = checkpoint.get("measures") or {}
        said = measures.get("compared") or checkpoint.get("note")
        lines.append(f"Fitted {escape(checkpoint['synthesizer'])} in {escape(checkpoint['directory'])}, on the "
                     f"store's test images" + (f": {escape(said)}." if said else "."))
        targets = measures.get("targets")
        # pix2pix's measure() layout ({target: {n, model, identity}}) as a table; any other as it came
        if isinstance(targets, Mapping) and all(isinstance(t, Mapping) and "model" in t for t in targets.values()):
            rows = [[escape(name), str(t.get("n", "")), *paired_cells(t["model"], t.get("identity"))]
                    for name, t in targets.items()]
            lines += ["", *markdown_table(("class", "n", *PAIRED_HEADER), rows)]
        elif measures:
            lines += ["", "```", json.dumps(json_ready(measures), indent=2), "```"]
        lines.append("")
    return ["## Paired truth", "", *lines] if lines else []


def markdown_table(header: list[str] | tuple[str, ...], rows: list[list[str]] = ()) -> list[str]:
    """A table's header and separator lines, and its rows (cells already escaped)."""
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)] + ["| " + " | ".join(r) + " |" for r in rows]


METHOD_WORDS = (
    "- FID and precision / recall / density / coverage depend on the sizes of the two sets, so the larger set "
    "is subsampled to the smaller's size (`equal n`): FID is the mean over the subsamples (± its bootstrap "
    "standard error), the four PRDC figures are mean ± standard deviation over the subsamples (10, seeded; "
    "sets of equal size are used whole). FID∞ and KID use all images.",
    "- The two-sample test's cross-validation folds are grouped by source: copies of one image, a synthetic "
    "image and the patient it was made from, and images of one patient are never split between the folds a "
    "network trains on and the fold it scores (otherwise copies in training teach it the very images it "
    "scores); the interval is a bootstrap over those groups.",
    "- Copies: synthetic images closer to a real training image (or its mirror) of *any* class than any real "
    "test image of their class comes; near-copies: closer than 95 % of them. The class of each synthetic "
    "image's nearest training image is in `nearest.csv`; the last two columns count those of another class "
    "(a translation of another class's images shows there).",
)


def markdown(result, rows: list[dict[str, Any]], drawn: list[dict[str, str]]) -> str:
    lines = [f"# Quality of the synthetic images in {escape(result.store)}", "", features_words(result.features), "",
             "## Measures", "",
             "Synthetic images against the class's real test images; the `real (train)` rows measure the real "
             "training images the same way: what a perfect synthesizer would score.", "", *METHOD_WORDS, "",
             *markdown_table(TABLE_HEADER, [table_cells(row) for row in rows]), ""]
    warnings = reference_warnings(result)
    lines += [*warnings, ""] if warnings else []
    lines += ["## In plain words", "", *(group_words(g, result.classes[g.class_name].reference)
                                          for g in result.groups), ""]
    lines += paired_lines(result)
    if drawn:
        lines += ["## Figures", ""]
        for group, files in zip(result.groups, drawn):
            name = f"{escape(group.synthesizer)} / {escape(group.class_name)}"
            lines += [f"### {name}", "", *(f"![{kind}: {name}]({path})" for kind, path in files.items()), ""]
    return "\n".join(lines)
