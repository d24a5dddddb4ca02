"""The experiment report's section on the synthetic images themselves: ``synthaug quality`` of each
synthesizing arm's store (written by the runner where :meth:`~synthaug.experiments.layout.Layout.quality_dir`
says), beside the arm's downstream result, so that a synthesizer's classifier score can be read with
how real, how varied and how copied its images are."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

import numpy as np

from synthaug.assess.figures import slug
from synthaug.experiments.layout import Layout

#: Classes a synthesizer added fewer images to are left out of the section (a top-up by one image).
MIN_SHOWN = 4
COLUMNS = ("FID∞ ± se", "KID", "precision", "recall", "coverage", "two-sample AUC [95%]", "copies", "near-copies")


def quality_tables(out: Path) -> dict[tuple[str, int], dict[str, Any]]:
    """``(arm store key, seed) -> quality.json`` of every measured store of experiment ``out``."""
    layout = Layout(out)
    found = {}
    for key, seed in layout.quality_measured():
        try:
            found[(key, seed)] = json.loads(layout.quality_json(key, seed).read_text())
        except (ValueError, OSError):
            continue  # unreadable: the section says nothing of it rather than fail the report
    return found


def _num(row: dict[str, Any], key: str, digits: int, scale: float = 1.0, suffix: str = "") -> str:
    value = row.get(key)
    return "—" if value is None else f"{scale * value:.{digits}f}{suffix}"  # null: not finite, or not measured


def _cells(row: dict[str, Any]) -> list[str]:
    copies = [_num(row, "copies_pixels", 0, 100, "%"), _num(row, "near_copies_pixels", 0, 100, "%")]
    if "skipped" in row:
        return [row["skipped"]] + [""] * (len(COLUMNS) - 3) + copies
    return [f"{_num(row, 'fid_inf', 1)} ± {_num(row, 'fid_inf_se', 1)}", _num(row, "kid", 3),
            _num(row, "precision", 2), _num(row, "recall", 2), _num(row, "coverage", 2),
            f"{_num(row, 'auc', 2)} [{_num(row, 'auc_low', 2)}, {_num(row, 'auc_high', 2)}]", *copies]


def quality_section(out: Path, labels: dict[str, str], headline: str,
                    downstream: Callable[[str], str], escape: Callable[[str], str]) -> list[str]:
    """Markdown lines: per seed measured, a table of every arm's synthetic images per class, the real
    training images as the reference row, and each arm's nearest-pair sheet. ``labels``: arm store key
    -> label; ``downstream(key)``: the arm's headline result as text."""
    layout = Layout(out)
    tables = quality_tables(out)
    if not tables:
        return []
    lines = ["## Quality of the synthetic images (`synthaug quality`)", "",
             "Synthetic training images of each class against the real test images of that class, in the feature "
             "space of a network trained on the real training images of the split (docs/quality.md). The real "
             "training images are the reference a synthesizer that drew new patients from the same population "
             "would match; copies are synthetic images closer to a training image than any real test image is.", ""]
    for seed in sorted({s for _, s in tables}):
        lines += [f"**seed {seed}**", "", f"| arm | {headline} | class | n | " + " | ".join(COLUMNS) + " |",
                  "|---|---:|---|---:|" + "---:|" * len(COLUMNS)]
        references: dict[str, dict] = {}
        sheets = []
        measured: set[str] = set()
        for (key, s), data in tables.items():
            if s != seed:
                continue
            for row in data.get("table", []):
                if row["synthesizer"] == "real (train)":
                    references.setdefault(row["class"], row)
                    continue
                if "skipped" in row and row["n"] < MIN_SHOWN:  # a class topped up by a handful of images
                    continue
                measured.add(row["class"])
                lines.append(f"| {escape(labels.get(key, key))} | {downstream(key)} | {escape(row['class'])} | "
                             f"{row['n']} | " + " | ".join(_cells(row)) + " |")
            directory = layout.quality_figures(key, seed)
            sheets += [(key, layout.link(p)) for p in sorted(directory.glob("nearest-*.png"))
                       if any(p.stem.endswith(f"-{slug(c)}") for c in measured)]
        for class_name, row in references.items():
            if class_name not in measured:
                continue
            lines.append(f"| real training images (reference) | | {escape(class_name)} | {row['n']} | "
                         + " | ".join(_cells(row)) + " |")
        lines.append("")
        for key, path in sheets:
            name = escape(labels.get(key, key))
            lines += [f"Closest synthetic–training pairs, {name}: ![nearest pairs]({path})", ""]
    return lines


def headline_text(members: list, headline: str) -> str:
    values = [r.measures[headline] for r in members if r.measures.get(headline) is not None]
    return f"{np.mean(values):.3f}" if values else "—"


def quality_sentences(out: Path) -> list[str]:
    """One plain line per measured synthesizer and class (what ``synthaug demo`` prints)."""
    lines = []
    for (key, seed), data in quality_tables(Path(out)).items():
        for row in data.get("table", []):
            if row["synthesizer"] == "real (train)":
                continue
            head = f"quality of {row['synthesizer']} {row['class']} images (seed {seed}, {row['n']} images):"
            if row["n"] < MIN_SHOWN:  # a class topped up by a handful of images
                continue
            if "skipped" in row:
                lines.append(f"{head} {row['skipped']}" + (f"; {100 * row['copies_pixels']:.0f}% copies of training "
                                                            f"images" if "copies_pixels" in row else ""))
                continue
            # one-sided: only an AUC above chance tells the sets apart (cross-validated AUCs of two
            # samples of one population fall a little below 0.5 on small sets)
            told = "told from real test images" if (row.get("auc_low") or 0) > 0.5 else \
                "cannot be told from real test images"
            copies = f", {100 * row['copies_pixels']:.0f}% copies of training images" if "copies_pixels" in row else ""
            lines.append(f"{head} FID∞ {_num(row, 'fid_inf', 1)} ± {_num(row, 'fid_inf_se', 1)}, precision "
                         f"{_num(row, 'precision', 2)}, recall {_num(row, 'recall', 2)}, {told} (two-sample AUC "
                         f"{_num(row, 'auc', 2)}){copies}")
    return lines
