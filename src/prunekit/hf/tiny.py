"""Tiny random-weight causal LMs of real architectures, saved as Hugging Face folders, for tests and examples.

Each is built from its architecture's config with small sizes (``AutoConfig.for_model``; defaults such as
``use_cache=True`` as users have them), with a byte-level BPE tokenizer trained here on Python's own
documentation, and written with ``save_pretrained``: the same kind of folder as a downloaded model,
without a hub.

Example:
    >>> import tempfile
    >>> folder = tiny_folder(tempfile.mkdtemp(), "qwen2")
    >>> sorted(p.name for p in __import__("pathlib").Path(folder).iterdir() if p.suffix == ".json")[:2]
    ['config.json', 'generation_config.json']
"""

from __future__ import annotations

import functools
from pathlib import Path

import torch

VOCAB = 320
SIZES = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
         "num_key_value_heads": 2, "vocab_size": VOCAB, "max_position_embeddings": 512}
ARCHITECTURES = {
    "llama": {}, "qwen2": {}, "mistral": {"sliding_window": None}, "phi3": {"pad_token_id": 0},
    "gemma": {"head_dim": 8}, "mixtral": {"num_local_experts": 4, "num_experts_per_tok": 2},
    "gpt2": {"n_embd": 32, "n_layer": 2, "n_head": 4, "n_positions": 512},
}
"""Architectures (``model_type``) and what each needs beside :data:`SIZES`."""


@functools.lru_cache(maxsize=1)
def tokenizer():
    """A byte-level BPE tokenizer of :data:`VOCAB` tokens trained on ``pydoc_data.topics`` (about 1 s)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    from ..data.text import read_text

    bpe = Tokenizer(models.BPE(unk_token="<unk>"))
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=VOCAB, special_tokens=["<unk>", "<s>", "</s>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    bpe.train_from_iterator([read_text("text:pydoc")[:200_000]], trainer)
    return PreTrainedTokenizerFast(tokenizer_object=bpe, unk_token="<unk>", bos_token="<s>", eos_token="</s>")


def tiny_folder(parent: str, architecture: str = "llama", seed: int = 0) -> str:
    """Build a tiny ``architecture`` causal LM (seeded), save it with its tokenizer under ``parent`` and
    return the folder."""
    from transformers import AutoConfig, AutoModelForCausalLM

    sizes = {} if architecture == "gpt2" else dict(SIZES)
    config = AutoConfig.for_model(architecture, **{**sizes, "vocab_size": VOCAB, **ARCHITECTURES[architecture]})
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config)
    folder = Path(parent) / f"tiny-{architecture}"
    model.save_pretrained(folder)
    tokenizer().save_pretrained(folder)
    return str(folder)
