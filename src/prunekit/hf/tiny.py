"""Tiny random-weight causal LMs of real architectures, saved as Hugging Face folders, for tests and examples.

Each is built from its architecture's config with small sizes (``AutoConfig.for_model``; defaults such as
``use_cache=True`` as users have them), with a byte-level BPE tokenizer trained here on Python's own
documentation, and written with ``save_pretrained``: the same kind of folder as a downloaded model,
without a hub.

:func:`tiny_gguf` writes the tiny Llama as a GGUF file, as llama.cpp's converter lays one out.

Example:
    >>> import tempfile
    >>> folder = tiny_folder(tempfile.mkdtemp(), "qwen2")
    >>> sorted(p.name for p in __import__("pathlib").Path(folder).iterdir() if p.suffix == ".json")[:2]
    ['config.json', 'generation_config.json']
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

import torch

VOCAB = 320
SIZES = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
         "num_key_value_heads": 2, "vocab_size": VOCAB, "max_position_embeddings": 512}
ARCHITECTURES = {
    "llama": {}, "qwen2": {}, "mistral": {"sliding_window": None}, "phi3": {"pad_token_id": 0},
    "gemma": {"head_dim": 8}, "mixtral": {"num_local_experts": 4, "num_experts_per_tok": 2},
    "gpt2": {"n_embd": 32, "n_head": 4, "n_positions": 512},
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


def tiny_folder(parent: str, architecture: str = "llama", seed: int = 0, layers: int = 2) -> str:
    """Build a tiny ``architecture`` causal LM of ``layers`` decoder blocks (seeded), save it with its
    tokenizer under ``parent`` and return the folder."""
    from transformers import AutoConfig, AutoModelForCausalLM

    sizes = {"n_layer": layers} if architecture == "gpt2" else {**SIZES, "num_hidden_layers": layers}
    config = AutoConfig.for_model(architecture, **{**sizes, "vocab_size": VOCAB, **ARCHITECTURES[architecture]})
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config)
    folder = Path(parent) / f"tiny-{architecture}"
    model.save_pretrained(folder)
    tokenizer().save_pretrained(folder)
    return str(folder)


def tiny_gguf(parent: str, seed: int = 0, tensor_type: str = "F32") -> str:
    """Write a tiny Llama (:func:`tiny_folder`'s, same seed) as a GGUF file under ``parent`` and return its
    path: llama.cpp's layout (its tensor names, the query and key rows permuted for its rotary embedding,
    the BPE tokenizer's tokens and merges), weights as float32. ``tensor_type`` other than ``F32`` names a
    GGML type whose raw bytes the 2-D weights are stored as instead (zeros; for a file of a quantization
    a reader does not support)."""
    import gguf
    import numpy as np
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_folder(parent, "llama", seed), local_files_only=True)
    config = model.config
    path = Path(parent) / f"tiny-llama-{tensor_type.lower()}.gguf"
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_context_length(config.max_position_embeddings)
    writer.add_embedding_length(config.hidden_size)
    writer.add_block_count(config.num_hidden_layers)
    writer.add_feed_forward_length(config.intermediate_size)
    writer.add_head_count(config.num_attention_heads)
    writer.add_head_count_kv(config.num_key_value_heads)
    writer.add_layer_norm_rms_eps(config.rms_norm_eps)
    writer.add_rope_freq_base(getattr(config, "rope_theta", None) or config.rope_parameters["rope_theta"])
    writer.add_vocab_size(config.vocab_size)
    bpe = tokenizer()
    vocab = sorted(bpe.get_vocab().items(), key=lambda item: item[1])
    special = set(bpe.all_special_tokens)
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("default")
    writer.add_token_list([token for token, _ in vocab])
    writer.add_token_types([gguf.TokenType.CONTROL if token in special else gguf.TokenType.NORMAL
                            for token, _ in vocab])
    merges = json.loads(bpe.backend_tokenizer.to_str())["model"]["merges"]
    writer.add_token_merges([m if isinstance(m, str) else " ".join(m) for m in merges])
    writer.add_bos_token_id(bpe.bos_token_id)
    writer.add_eos_token_id(bpe.eos_token_id)
    writer.add_unk_token_id(bpe.unk_token_id)
    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.LLAMA, config.num_hidden_layers)
    heads = {"q_proj": config.num_attention_heads, "k_proj": config.num_key_value_heads}
    for name, tensor in model.state_dict().items():
        weights = tensor.detach().float().numpy()
        kind = name.split(".")[-2]
        if kind in heads:  # llama.cpp's rotary layout: each head's rows (pairs, halves) interleaved
            n = heads[kind]
            weights = weights.reshape(n, 2, weights.shape[0] // n // 2, *weights.shape[1:]).swapaxes(1, 2) \
                .reshape(weights.shape)
        gguf_name = names.get_name(name, try_suffixes=(".weight", ".bias"))
        if tensor_type != "F32" and weights.ndim == 2:
            ggml_type = gguf.GGMLQuantizationType[tensor_type]
            block, size = gguf.GGML_QUANT_SIZES[ggml_type]
            raw = np.zeros((weights.shape[0], weights.shape[1] // block * size), dtype=np.uint8)
            writer.add_tensor(gguf_name, raw, raw_shape=raw.shape, raw_dtype=ggml_type)
        else:
            writer.add_tensor(gguf_name, np.ascontiguousarray(weights))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return str(path)
