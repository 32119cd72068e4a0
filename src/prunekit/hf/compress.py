"""Quantize a (pruned) Hugging Face language model and code it into one file, with held-out perplexity.

Every decoder linear layer (the output head stays as it is, or follows the embedding it is tied to) is quantized per output channel, symmetric, so
pruned weights stay exactly zero: rounded to nearest (``uniform``) or with GPTQ's error compensation from
calibration sequences of the text (``gptq``, block by block as pruning calibrates, the mask held). The
output is a Hugging Face folder whose weights are the quantized values (stock transformers loads it and
gives the quantized model's logits) and ``model.pkz``, the codes and positions entropy-coded
(:mod:`prunekit.deploy.compressed`); ``prunekit.json`` records the sizes and the perplexity before and after.

Example (a tiny random Llama, built and saved here):
    >>> import tempfile
    >>> from prunekit.hf.tiny import tiny_folder
    >>> folder = tiny_folder(tempfile.mkdtemp(), "llama")
    >>> result = compress_pretrained("hf:" + folder, out=folder + "-q4", bits=4, calibration_sequences=2,
    ...                              embedding_bits=8, seqlen=64, held_out=1024, progress=False)
    >>> result.file_bytes < result.dense_bytes / 2, result.perplexity > 1
    (True, True)
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from ..data.text import DEFAULT, token_splits
from ..deploy.compressed import export_compressed
from ..errors import ConfigError
from ..prune import Mask, select_layers
from ..quantize import check_bits, gptq_model, round_layers
from ..storage import check_output

from .load import load
from .perplexity import perplexity
from .save import save_pretrained

COMPRESSED_FILE = "model.pkz"
LM_QUANTIZATIONS = ("uniform", "gptq")


@dataclass
class CompressedLM:
    """What :func:`compress_pretrained` measured and wrote."""

    path: Path
    file: Path
    file_bytes: int
    dense_bytes: int
    perplexity_before: float
    perplexity: float


def compress_pretrained(reference: str, *, out: str | os.PathLike, quantization: str = "gptq", bits: int = 4,
                        dataset: str = DEFAULT, seqlen: int = 512, held_out: int = 16384,
                        calibration_sequences: int = 32, embedding_bits: Optional[int] = None,
                        progress: bool = True) -> CompressedLM:
    """Quantize the decoder linear layers of ``reference`` (``hf:DIR`` or ``hf:FILE.gguf``) to ``bits`` and
    write ``out`` (a Hugging Face folder plus ``model.pkz``). ``embedding_bits``: also round the input
    embedding (and an output head tied to it) per row to that many bits; by default it is stored as it is.

    Raises:
        ConfigError: an unknown quantization, bits outside 2-8, a model or text that cannot be read.
    """
    if quantization not in LM_QUANTIZATIONS:
        raise ConfigError(f"unknown quantization {quantization!r} for a language model; expected one of "
                          f"{LM_QUANTIZATIONS}")
    check_bits(bits, low=2)
    if embedding_bits is not None:
        check_bits(embedding_bits, low=2)
    out = check_output(out, inputs=[reference.removeprefix("hf:")])
    pretrained = load(reference)
    model = pretrained.model
    splits = token_splits(dataset, pretrained.tokenizer, held_out, seqlen)
    before = perplexity(model, splits.held_out, seqlen, progress)
    layers = dict(select_layers(model, "weight"))
    if quantization == "gptq":
        calibration = splits.calibration(calibration_sequences, seqlen)
        quantized = gptq_model(model, layers, calibration, lambda name, module: bits, batches=len(calibration),
                               progress=progress)
    else:
        quantized = round_layers(layers, lambda name, module: bits)
    if embedding_bits is not None:
        embedding = model.get_input_embeddings()
        name = next(n for n, m in model.named_modules() if m is embedding)
        quantized.update(round_layers({name: embedding}, lambda name, module: embedding_bits))
    after = perplexity(model, splits.held_out, seqlen, progress)
    mask = Mask({name: q.dense() != 0 for name, q in quantized.items()})
    dense_bytes = sum(4 * p.numel() for p in {id(p): p for p in model.parameters()}.values())
    record = {"compression": {"quantization": quantization, "bits": bits, "embedding_bits": embedding_bits,
                              "dataset": dataset,
                              "calibration": [calibration_sequences, seqlen] if quantization == "gptq" else None},
              "metrics": {"perplexity_before": before, "perplexity": after, "perplexity_window": seqlen,
                          "held_out_tokens": len(splits.held_out), "dense_fp32_bytes": dense_bytes}}
    path = save_pretrained(pretrained, out, mask, record)
    file = export_compressed(model, quantized, path / COMPRESSED_FILE,
                             metadata={"source": reference, "quantization": quantization, "bits": bits})
    return CompressedLM(path, file.path, file.file_bytes, dense_bytes, before, after)
