"""``synthaug train``: train a registered classifier on a store; evaluate it on the store's test split."""

from __future__ import annotations

import json
from dataclasses import fields
from pathlib import Path

import click

from synthaug.cli import main
from synthaug.cli.common import device_option, parse_key_values
from synthaug.errors import SynthaugError
from synthaug.pipeline.train import LOGS, MODES, OPTIMIZERS, SAMPLERS, SCHEDULERS, TrainConfig

#: TrainConfig's defaults, the one place they are written: the options below show them, and an option
#: not given leaves the field to TrainConfig (or to --config / --train-option).
DEFAULTS = {f.name: f.default for f in fields(TrainConfig)}

# CLI option -> TrainConfig field (the options a resumed run may repeat, but not change).
_CONFIG_OPTIONS = {"classifier": "classifier", "mode": "mode", "weights": "weights", "epochs": "epochs",
                   "finetune_epochs": "finetune_epochs", "batch_size": "batch_size", "lr": "lr",
                   "finetune_lr": "finetune_lr", "optimizer": "optimizer", "scheduler": "scheduler",
                   "augment": "augment", "val_fraction": "val_fraction", "positive_class": "positive_class",
                   "seed": "seed", "num_workers": "num_workers", "device": "device",
                   "bf16": "bf16", "compile_model": "compile", "log": "log", "keep_optimizer": "keep_optimizer",
                   "loss_weights": "loss_weights", "sampler": "sampler", "logit_adjust": "logit_adjust"}


def read_config_file(path: Path) -> dict:
    """A ``--config`` TOML file: training settings by their ``TrainConfig`` names (a
    ``[classifier_options]`` table for the classifier's); checked when the config is built."""
    import tomllib

    try:
        values = tomllib.loads(path.read_text())
    except (OSError, UnicodeDecodeError) as exc:
        raise SynthaugError(f"{path}: cannot read the --config file ({exc})") from None
    except tomllib.TOMLDecodeError as exc:
        raise SynthaugError(f"{path}: not valid TOML ({exc})") from None
    return values


@main.command("train")
@click.option("--classifier", "classifier", metavar="NAME", default=DEFAULTS["classifier"],
              help="Registered classifier: resnet50, densenet121 (see `synthaug plugins`).")
@click.option("--data", type=click.Path(dir_okay=False, path_type=Path), metavar="STORE",
              help="Store with train and test splits (from `synthaug balance`).")
@click.option("--mode", type=click.Choice(MODES), default=DEFAULTS["mode"], show_default=True,
              help="scratch: all layers from random init; transfer: ImageNet weights, frozen backbone, then last "
                   "block at --finetune-lr (liang2021); finetune: ImageNet weights, all layers from epoch 1 at --lr "
                   "(quan2021).")
@click.option("--weights", type=click.Path(dir_okay=False, path_type=Path), metavar="PATH", default=DEFAULTS["weights"],
              help="Local torchvision-format ImageNet state dict (transfer, finetune).")
@click.option("--epochs", type=int, default=DEFAULTS["epochs"], show_default=True,
              help="Epochs in all (liang2021: 60; transfer 50 frozen + 10 fine-tuning).")
@click.option("--finetune-epochs", type=int, default=DEFAULTS["finetune_epochs"], metavar="E2",
              help="transfer: epochs (within --epochs) with the last block unfrozen  [default: epochs/6]")
@click.option("--batch-size", type=int, default=DEFAULTS["batch_size"], show_default=True)
@click.option("--lr", type=float, default=DEFAULTS["lr"], show_default=True,
              help="Learning rate (scratch, finetune; the head in transfer's frozen stage).")
@click.option("--finetune-lr", type=float, default=DEFAULTS["finetune_lr"], show_default=True,
              help="transfer: the last-block stage's rate.")
@click.option("--optimizer", type=click.Choice(OPTIMIZERS), default=DEFAULTS["optimizer"], show_default=True)
@click.option("--scheduler", type=click.Choice(SCHEDULERS), default=DEFAULTS["scheduler"], show_default=True,
              help="cosine: anneal the rate to 0 over each stage (scratch, finetune: over all epochs).")
@click.option("--augment/--no-augment", default=DEFAULTS["augment"], show_default=True,
              help="Batch augmentation: horizontal flip + rotation within 5 degrees (liang2021); "
                   "quan2021 turns it off.")
@click.option("--loss-weights", metavar="none|balanced|CLASS=W,...", default=DEFAULTS["loss_weights"],
              show_default=True,
              help="Class-weighted loss: balanced (inverse class frequency of the training split, averaging 1 over "
                   "its images) or a weight per class (covid=4,normal=1,viral=1).")
@click.option("--sampler", type=click.Choice(SAMPLERS), default=DEFAULTS["sampler"], show_default=True,
              help="balanced: each draw picks a class uniformly, then one of its images (with replacement); an "
                   "epoch keeps the split's size.")
@click.option("--logit-adjust", type=float, default=DEFAULTS["logit_adjust"], show_default=True, metavar="TAU",
              help="Logit-adjusted loss (Menon et al. 2021): the training loss is on logits + TAU * log(class "
                   "prior); predictions use the plain logits. 0: off.")
@click.option("--val-fraction", type=float, default=DEFAULTS["val_fraction"], show_default=True, metavar="F",
              help="Share of each class's real training images (whole patients) kept for choosing the best epoch.")
@click.option("--positive-class", metavar="NAME", default=DEFAULTS["positive_class"],
              help="Class of sensitivity/specificity  [default: covid when the store has it]")
@click.option("--seed", type=int, default=DEFAULTS["seed"], show_default=True)
@click.option("--num-workers", type=int, default=DEFAULTS["num_workers"],
              help="DataLoader workers reading the store  [default: 0 on the CPU, 4 on CUDA]")
@device_option(default=DEFAULTS["device"])
@click.option("--bf16/--no-bf16", "bf16", default=DEFAULTS["bf16"], show_default=True,
              help="On CUDA: bfloat16 autocast of the forward pass (the CPU always trains in float32).")
@click.option("--compile", "compile_model", is_flag=True, default=DEFAULTS["compile"],
              help="torch.compile the network (opt-in; slow to start).")
@click.option("--classifier-option", "classifier_options", multiple=True, metavar="KEY=VALUE",
              help="Option of the classifier (e.g. width=0.25 for a quarter-width network); repeatable.")
@click.option("--log", type=click.Choice(LOGS), default=DEFAULTS["log"], show_default=True,
              help="tensorboard: also write TensorBoard event files in RUN_DIR/tensorboard "
                   "(needs the tensorboard package).")
@click.option("--keep-optimizer", is_flag=True, default=DEFAULTS["keep_optimizer"],
              help="Keep checkpoints/last.pt (the optimizer state) once the run has finished; by default a finished "
                   "run keeps the best weights only.")
@click.option("--config", "config_file", type=click.Path(exists=True, dir_okay=False, path_type=Path), metavar="FILE",
              help="TOML file of training settings by their Python names (every TrainConfig field, docs/cli.md); "
                   "--train-option and the options above override it.")
@click.option("--train-option", "train_options", multiple=True, metavar="KEY=VALUE",
              help="Any training setting by its Python name (e.g. weight_decay=1e-4, hflip_p=0.3); overrides "
                   "--config; repeatable.")
@click.option("--resume", is_flag=True, help="Continue the run in --out from its last checkpoint.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True, metavar="RUN_DIR")
@click.pass_context
def train_command(ctx: click.Context, resume, out, data, **options) -> None:
    """Train a classifier on a store and report test accuracy, per-class P/R/F1, ROC-AUC."""
    from synthaug.kit.distributed import main_process
    from synthaug.pipeline.evaluate import evaluate
    from synthaug.pipeline.report import per_class_markdown, summary_markdown
    from synthaug.pipeline.train import train

    def value(opt):
        v = ctx.params[opt]
        return str(v) if isinstance(v, Path) else v

    # Settings in rising precedence: the --config file, --train-option, the named options given.
    config_file = options.pop("config_file")
    given = read_config_file(config_file) if config_file else {}
    where = str(config_file) if config_file else ""
    given.update(parse_key_values(options.pop("train_options"), "--train-option"))
    given.update({field: value(opt) for opt, field in _CONFIG_OPTIONS.items()
                  if ctx.get_parameter_source(opt) == click.core.ParameterSource.COMMANDLINE})
    classifier_options = parse_key_values(options.pop("classifier_options"), "--classifier-option")
    if classifier_options:
        earlier = given.get("classifier_options")
        given["classifier_options"] = {**(earlier if isinstance(earlier, dict) else {}), **classifier_options}
    if resume:
        # Options not repeated are the run's own; repeated ones must agree (train() checks).
        manifest_path = out / "manifest.json"
        if not manifest_path.is_file():
            raise SynthaugError(f"--resume {out}: not a training run (no manifest.json)")
        manifest = json.loads(manifest_path.read_text())
        config = TrainConfig.from_dict({**manifest["config"], **given}, where)
        data = data or Path(manifest["data"]["path"])
    else:
        config = TrainConfig.from_dict(given, where)
        if not config.classifier:
            raise SynthaugError("missing --classifier NAME (e.g. resnet50 or densenet121)")
        if data is None:
            raise SynthaugError("missing --data STORE (a store with train and test splits)")
    run = train(data, out, config, resume=resume)
    if not main_process():  # under torchrun: rank 0 evaluates and reports
        return
    metrics = evaluate(run)
    click.echo(f"run: {run}")
    click.echo(f"test: {summary_markdown(metrics)}")
    click.echo(per_class_markdown(metrics), nl=False)
