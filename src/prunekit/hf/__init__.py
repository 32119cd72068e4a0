"""Pretrained Hugging Face language models in and out.

* :func:`load` -- ``hf:DIR`` (a ``save_pretrained`` folder) or ``hf:FILE.gguf``, offline, no remote code;
* :func:`save_pretrained` -- a pruned model as a folder stock ``transformers`` loads;
* :func:`perplexity` -- held-out perplexity in non-overlapping windows (the SparseGPT/Wanda protocol);
* :func:`prune_pretrained` -- load, calibrate on ``text:`` data, prune (one-shot or with a schedule that
  fine-tunes on the text), measure, save;
* :func:`train_pretrained` -- fine-tune on a text (next-token loss), measure, save;
* :func:`sweep_pretrained` -- every series (schedule@criterion, OWL) at every sparsity or N:M level, a table
  and plot of held-out perplexity, resumable;
* :func:`prune_depth` -- remove whole decoder blocks (least angular distance between a block's input and
  output), written as a folder with a standard, shorter config;
* :func:`compact_pretrained` -- a unit-pruned model made smaller, in a config solved from its new shapes
  (:func:`prune_pretrained` with ``method="unit"`` writes it), or kept in prunekit's compacted form where no
  standard config says its shapes; :func:`resolve_size_target` sizes it to a parameter, memory or latency
  target, and :mod:`.depth_width` plans how many blocks go first;
* :func:`prune_experts` -- remove the least salient experts of mixture-of-experts layers (REAP);
* :func:`block_sensitivity` -- each decoder block pruned alone over a grid: curves for
  :func:`~prunekit.plan.allocate`'s per-block plans;
* :func:`load_model_or_checkpoint` -- ``hf:DIR`` wherever a command reads a checkpoint (``export --format hf``);
* :mod:`.tiny` -- tiny random models of real architectures for tests and examples.
"""

from . import export  # noqa: F401  (registers the "hf" export format)
from .depth import DepthPruned, prune_depth
from .experts import ExpertsPruned, prune_experts
from .checkpoint import LMCheckpoint, example_tokens, is_hf_folder, load_model_or_checkpoint
from .load import DTYPES, Pretrained, is_hf_reference, load, load_tokenizer
from .perplexity import perplexity
from .prune import PrunedLM, held_out_perplexity, prune_pretrained
from .save import MASKS_FILE, RECORD_FILE, save_pretrained
from .sensitivity import block_sensitivity
from .sweep import LMSeries, LMSweep, sweep_pretrained
from .train import TrainedLM, train_pretrained
from .targets import SizeSearch, SizeTarget, resolve_size_target
from .width import CompactedLM, compact_pretrained

__all__ = ["block_sensitivity", "CompactedLM", "compact_pretrained", "DepthPruned", "ExpertsPruned", "prune_depth", "prune_experts", "resolve_size_target", "SizeSearch", "SizeTarget", "DTYPES", "LMCheckpoint", "LMSeries", "LMSweep", "MASKS_FILE", "Pretrained", "PrunedLM", "RECORD_FILE", "example_tokens",
           "held_out_perplexity", "is_hf_folder", "is_hf_reference", "load", "load_model_or_checkpoint",
           "load_tokenizer", "perplexity", "prune_pretrained", "save_pretrained", "sweep_pretrained", "TrainedLM", "train_pretrained"]
