"""``prunekit bench generate``: prefill and decode speed of language models (batch 1, KV cache), dense and
pruned in one run, with the pruned ones on prunekit's sparse kernels."""

from __future__ import annotations

import argparse
import platform

import torch

from ..bench.generate import (decode_bytes, decode_limits, generation_speed, kernel_summary, linear_free,
                              linear_layout, max_logit_difference, sparse_runner)
from ..bench.rounding import rounding_floor
from ..bench.roofline import read_bandwidth
from ..deploy.sparsify import is_linear_layer, sparse_enough
from ..errors import ConfigError
from ..hf import LMCheckpoint, load_model_or_checkpoint
from ..kernels import VALUE_TYPES
from .common import add_command, positive_int


FLOOR = "floor: linear layers free"


def register_generate(sub) -> None:
    parser = add_command(
        sub, "generate", help="prefill and decode tokens/s of language models, dense and pruned in one run",
        description="Time greedy generation at batch 1 with a KV cache: a prompt of --prompt-tokens random tokens "
        "(prefill), then --new-tokens tokens one at a time (decode). Every model given is timed in turn, repeat "
        "after repeat (medians); the first is the reference the speed-ups are measured against. Each pruned model "
        "also runs with its pruned linear layers on prunekit's sparse kernels (chosen per layer and token count by "
        "measurement; --no-sparse: masked dense only), checked to give the masked model's logits (beside the "
        "difference the same model shows with its linear layers computed exactly, in fp64: what rounding alone "
        "moves).\n\nExample:\n"
        "  prunekit bench generate --model hf:runs/smollm2 hf:runs/smollm2-w50 hf:runs/smollm2-24",
        run=run_bench_generate,
    )
    parser.add_argument("--model", nargs="+", required=True, help="hf:DIR or hf:FILE.gguf models; the first is the "
                        "reference (usually the dense model)")
    parser.add_argument("--prompt-tokens", type=positive_int, default=128, help="tokens of the prompt (prefill)")
    parser.add_argument("--new-tokens", type=positive_int, default=64, help="tokens generated one at a time (decode)")
    parser.add_argument("--repeats", type=positive_int, default=3, help="timed generations per model (medians)")
    parser.add_argument("--threads", type=positive_int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("--no-sparse", action="store_true", help="do not add the sparse-kernel versions")
    parser.add_argument("--floor", action="store_true",
                        help="also time the first model with its linear layers costing nothing (zeros): what the "
                        "rest of the model costs, the most faster linear kernels could buy; and give each model "
                        "of the first one's layout its decode limit: its linear layers reading their bytes at "
                        "the read bandwidth measured in the same run, the rest costing the floor")
    parser.add_argument("--values", choices=tuple(VALUE_TYPES), default="fp32",
                        help="value type of the sparse kernels' weights (fp16/bf16 round them, int8 stores per-row "
                        "codes and scales: lossy, but a model quantized uniformly to 8 bits keeps its own codes)")


def run_bench_generate(args: argparse.Namespace) -> int:
    if args.threads:
        torch.set_num_threads(args.threads)
    models, checks = {}, {}
    for reference in args.model:
        ckpt = load_model_or_checkpoint(reference)
        if not isinstance(ckpt, LMCheckpoint):
            raise ConfigError(f"{reference}: bench generate takes language models (hf:DIR or hf:FILE.gguf)")
        models[reference] = ckpt.model.eval()
        if not args.no_sparse and any(sparse_enough(m.weight) for m in ckpt.model.modules() if is_linear_layer(m)):
            runner = sparse_runner(ckpt.model, prompt_tokens=args.prompt_tokens, values=args.values)
            models[f"{reference} (sparse kernels)"] = runner
            checks[reference] = (max_logit_difference(ckpt.model, runner), rounding_floor(ckpt.model),
                                 kernel_summary(runner))
    limits = {}
    if args.floor:
        first = next(iter(models.values()))
        layout = linear_layout(first)
        limit_bytes = {name: decode_bytes(m) for name, m in models.items() if linear_layout(m) == layout}
        models[FLOOR] = linear_free(first)
    rows = generation_speed(models, prompt_tokens=args.prompt_tokens, new_tokens=args.new_tokens,
                            repeats=args.repeats)
    if args.floor:
        bandwidth = read_bandwidth()
        floor = next(r["decode_s_per_token"] for r in rows if r["version"] == FLOOR)
        limits = decode_limits(rows, floor, limit_bytes, bandwidth)
    print(f"batch 1, prompt {args.prompt_tokens} tokens, {args.new_tokens} new tokens, greedy, KV cache; "
          f"{torch.get_num_threads()} threads, torch {torch.__version__}, {platform.machine()}; medians of "
          f"{args.repeats} interleaved runs")
    print(f"{'version':52s} {'prefill tok/s':>13s} {'x':>6s} {'decode tok/s':>12s} {'x':>6s}"
          + (f" {'limit x':>8s} {'MB/token':>9s}" if limits else ""))
    for row in rows:
        name = row["version"]
        limit = f" {limits[name]:>8.2f} {limit_bytes[name] / 1e6:>9.1f}" if name in limits else ""
        print(f"{name:52s} {row['prefill_tokens_per_s']:>13.1f} {row['speedup_prefill']:>6.2f} "
              f"{row['decode_tokens_per_s']:>12.2f} {row['speedup_decode']:>6.2f}{limit}")
    if limits:
        print(f"limit x: the most decode could reach against the first model's measured speed if the linear layers "
              f"read their bytes per token (MB/token: each weight in the form its one-token kernel reads, output head "
              f"included) at the read bandwidth measured now, {bandwidth:.1f} GB/s, and the rest cost the floor, "
              f"{floor * 1e3:.1f} ms/token")
    for reference, (difference, rounding, kernels) in checks.items():
        used = ", ".join(f"{k} {dict(sorted(v.items()))}" for k, v in sorted(kernels.items()))
        print(f"{reference}: sparse kernels vs masked dense, max logit difference {difference:.1e} (relative; a "
              f"64-token prompt, then 16 tokens decoded one by one); its linear layers computed exactly (fp64) "
              f"instead: {rounding:.1e}; layers by kernel and token count: {used or 'all dense'}")
    return 0
