"""``prunekit train``: train a registered model and save a checkpoint."""

from __future__ import annotations

import argparse

from ..errors import ConfigError
from ..hf import is_hf_reference
from ..study import train_model
from .common import (add_command, positive_float, add_data_options, add_device_option, add_model_options, add_train_options,
                     train_config)
from .lm import add_lm_options, run_train_lm

DEFAULT_DATASET = "mnist"


def register(commands) -> None:
    parser = add_command(
        commands, "train", help="train a model and save a checkpoint",
        description="Train a registered model on a dataset and write OUT/model.safetensors, OUT/config.json and "
        "OUT/metrics.json; or fine-tune a pretrained language model (--model hf:DIR) on a text into a Hugging Face "
        "folder.\n\nExamples:\n  prunekit train --model mlp --epochs 5 --out runs/mlp\n"
        "  prunekit train --model hf:runs/smollm2 --dataset text:notes.txt --epochs 0.5 --out runs/smollm2-notes",
        run=run_train,
    )
    add_model_options(parser)
    parser.add_argument("--out", required=True, help="checkpoint folder to write (checked before training)")
    add_train_options(parser)
    add_device_option(parser)
    add_data_options(parser, default=DEFAULT_DATASET)
    add_lm_options(parser)
    group = parser.add_argument_group("training a language model (--model hf:DIR)")
    group.add_argument("--teacher", default=None, metavar="hf:DIR",
                       help="distil from this model (e.g. the dense model a pruned one came from; same tokenizer): "
                       "the student learns the teacher's next-token distributions instead of the text's tokens")
    group.add_argument("--distill-temperature", type=positive_float, default=1.0, help="softens both distributions")
    group.add_argument("--distill-alpha", type=float, default=1.0,
                       help="weight of the KL term; 1 - alpha weighs the next-token loss on the text")
    group.add_argument("--state-every", type=int, default=200, metavar="STEPS",
                       help="write the training state (weights, optimizer, step) to OUT.state/ every STEPS steps; "
                       "the same command run again after an interruption continues from it (0: never)")
    group.add_argument("--gradient-checkpointing", action="store_true",
                       help="recompute each block's activations in the backward pass (less memory, more time)")


def run_train(args: argparse.Namespace) -> int:
    config = train_config(args)
    if args.teacher and not is_hf_reference(args.model):
        raise ConfigError("--teacher distils a language model (--model hf:DIR); for the model zoo, prunekit prune "
                          "--distill distils a pruned model from its dense checkpoint")
    if args.gradient_checkpointing and not is_hf_reference(args.model):
        raise ConfigError("--gradient-checkpointing uses transformers' own: it is for --model hf:DIR")
    if is_hf_reference(args.model):
        return run_train_lm(args, config, DEFAULT_DATASET)
    result = train_model(
        args.model, model_args=dict(args.model_arg) or None, dataset=args.dataset, data_dir=args.data_dir,
        config=config, out=args.out, progress=not args.quiet, device=args.device,
    )
    m = result.metrics
    quality = f"test accuracy {m['test_accuracy']:.4f}" if m["test_accuracy"] is not None else \
        f"test loss {m['test_loss']:.4f}"
    print(f"{args.model}: {quality} after {config.epochs:g} epochs in {m['train_seconds']:.1f} s on "
          f"{m['device']} -> {result.path}")
    return 0
