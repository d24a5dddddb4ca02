"""``synthaug quality STORE``: fidelity, diversity and memorisation of a store's synthetic images."""

from __future__ import annotations

from pathlib import Path

import click

from synthaug.cli import main


@main.command("quality")
@click.argument("store", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--class", "classes", multiple=True, metavar="CLASS",
              help="Measure this class only; repeatable (default: every class with synthetic images).")
@click.option("--features", default=None, metavar="NAME|PATH",
              help="Feature network: a classifier name trained on the store's real training images "
                   "[default: densenet121], a torchvision weights file, or an earlier run's <out>/features.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None, metavar="DIR",
              help="Output directory [default: <store stem>-quality beside the store].")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--synth-checkpoint", type=click.Path(path_type=Path), default=None, metavar="DIR",
              help="The synthesizer's fitted checkpoint: its own paired measures on the store's test images.")
@click.option("--feature-epochs", type=click.IntRange(min=1), default=None,
              help="Epochs of the trained feature network [default: 2].")
@click.option("--feature-size", type=click.IntRange(min=32), default=None,
              help="Side images are resized to for the feature network (32 or more: its five halvings) "
                   "[default: 64 trained, 224 weights file].")
@click.option("--no-figures", is_flag=True, help="Write the numbers only (no figures/).")
def quality_command(store: Path, classes: tuple[str, ...], features: str | None, out: Path | None, seed: int,
                    synth_checkpoint: Path | None, feature_epochs: int | None, feature_size: int | None,
                    no_figures: bool) -> None:
    """FID, KID, precision/recall/density/coverage, a two-sample test and copies of training images,
    per synthesizer and class of STORE, beside real training images measured the same way."""
    from synthaug.assess.features import FeatureConfig
    from synthaug.assess.report import check_output_dir, summary_rows
    from synthaug.assess.run import quality

    config = FeatureConfig(seed=seed, size=feature_size)
    if feature_epochs is not None:
        config.epochs = feature_epochs
    # checked before the minutes of measuring, not only when writing
    out = check_output_dir(out if out is not None else store.with_name(f"{store.stem}-quality"))
    result = quality(store, classes=classes or None, features=features, out=out, seed=seed,
                     synth_checkpoint=synth_checkpoint, feature_config=config, figures=not no_figures)
    click.echo(text_table(summary_rows(result)))
    click.echo(f"wrote {result.path}")


def text_table(rows: list[dict]) -> str:
    """The table's main columns as plain text for the terminal (quality.md has them all)."""
    from synthaug.assess.report import interval, number, percent, with_error

    header = ["synthesizer", "class", "n", "FID∞ ± se", "KID ± std", "prec", "recall", "cover", "AUC [95 %]",
              "copies"]
    lines = [header]
    for row in rows:
        head = [str(row["synthesizer"]), str(row["class"]), str(row["n"])]
        lines.append(head + [f"skipped: {row['skipped']}"] if "skipped" in row else head + [
            with_error(row, "fid_inf", "fid_inf_se"), with_error(row, "kid", "kid_std"), number(row["precision"], 2),
            number(row["recall"], 2), number(row["coverage"], 2), interval(row["auc"], row["auc_low"], row["auc_high"]),
            percent(row.get("copies_pixels"))])
    # a skipped row's reason runs past the columns instead of widening them
    widths = [max(len(line[i]) for line in lines if len(line) == len(header)) for i in range(len(header))]
    return "\n".join("  ".join(cell.ljust(width) for cell, width in zip(line, widths)).rstrip() for line in lines)
