"""``prunekit export --format hf``: a Hugging Face model (a folder, a GGUF file, or a pruned folder) written
as a folder stock ``transformers`` loads, its mask applied and kept in ``masks.safetensors``.

Example (a GGUF file or a pruned folder are exported the same way):
    >>> from prunekit.deploy import EXPORTERS
    >>> EXPORTERS.get("hf").output
    'folder'
"""

from __future__ import annotations

from pathlib import Path

from torch import nn

from ..deploy import EXPORTERS, Exporter, ExportOptions
from ..errors import ConfigError

from .load import Pretrained, is_hf_reference, load_tokenizer
from .save import save_pretrained


def _hf(model: nn.Module, out: Path, options: ExportOptions) -> list[str]:
    source = options.source.get("source")
    if not is_hf_reference(source):
        raise ConfigError("--format hf writes Hugging Face models (loaded from hf:DIR or hf:FILE.gguf); this "
                          "checkpoint is a prunekit model: export it as sparse, compact or onnx")
    if options.source.get("compacted_form"):
        raise ConfigError(f"{source} is in prunekit's compacted form (a plan no standard config describes): --format "
                          f"hf cannot write it as a folder stock transformers loads; prunekit loads the folder as it is")
    pretrained = Pretrained(model, load_tokenizer(source), Path(source.removeprefix("hf:")),
                            options.source.get("digest", ""), options.source.get("dtype", "fp32"))
    record = {"pruning": options.pruning, "metrics": options.metrics}
    if options.source.get("pruned_from"):  # keep the model it was first pruned from
        record.update(source=options.source["pruned_from"], source_digest=options.source.get("pruned_from_digest"))
    save_pretrained(pretrained, out, options.mask, record)
    files = sorted(p.name for p in out.iterdir())
    return [f"Hugging Face folder ({', '.join(files)}): AutoModelForCausalLM.from_pretrained loads it without "
            f"prunekit"]


EXPORTERS.register("hf", Exporter("hf", "folder", _hf, language_models=True),
                   description="a Hugging Face folder (save_pretrained layout, safetensors, tokenizer, masks) that "
                               "stock transformers loads (models from hf:DIR or hf:FILE.gguf)")
