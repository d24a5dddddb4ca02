"""``synthaug evaluate``: measure a run's best checkpoint on a store split."""

from __future__ import annotations

from pathlib import Path

import click

from synthaug.cli import main


@main.command("evaluate")
@click.option("--run", "run", type=click.Path(file_okay=False, path_type=Path), required=True, metavar="RUN_DIR",
              help="A directory written by `synthaug train`.")
@click.option("--data", type=click.Path(dir_okay=False, path_type=Path), metavar="STORE",
              help="Store to measure on (default: the run's own store).")
@click.option("--split", default="test", show_default=True, help="Split of the store.")
def evaluate_command(run: Path, data: Path | None, split: str) -> None:
    """Accuracy, per-class precision/recall/F1, confusion matrix, ROC-AUC of a trained run."""
    from synthaug.pipeline.evaluate import evaluate
    from synthaug.pipeline.report import per_class_markdown, summary_markdown

    metrics = evaluate(run, data, split)
    click.echo(f"{split}: {summary_markdown(metrics)}")
    click.echo(per_class_markdown(metrics), nl=False)
    click.echo(f"wrote {metrics['files']['metrics']} and {metrics['files']['confusion']}")
