"""Text for language models: ``text:FILE`` read, tokenized with the model's tokenizer, and cut into a
held-out stream and calibration sequences that never overlap.

Sources: ``text:FILE.txt`` (UTF-8), ``text:FILE.jsonl:FIELD`` (one JSON object a line, the text in
``FIELD``), ``text:DIR`` (a folder the ``datasets`` library's ``save_to_disk`` wrote, its ``text``
column), and ``text:pydoc`` (Python's own documentation, ``pydoc_data.topics``: it ships with every Python,
so the examples run offline). The first ``held_out`` tokens are the held-out stream (perplexity is measured
on it); calibration sequences are consecutive windows of the tokens after it.

Example:
    >>> text = read_text("text:pydoc")
    >>> len(text) > 100_000 and "assert" in text
    True
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..errors import ConfigError

PREFIX = "text:"
DEFAULT = "text:pydoc"


def is_text_reference(text: Any) -> bool:
    return isinstance(text, str) and text.startswith(PREFIX)


def read_text(reference: str) -> str:
    """The text a ``text:`` reference names (see the module docstring).

    Raises:
        ConfigError: for a missing file, text that is not UTF-8, a jsonl line without the field, or an
            empty text, naming the file.
    """
    source = reference.removeprefix(PREFIX)
    if source == "pydoc":
        import pydoc_data.topics as topics

        return "\n\n".join(topics.topics[k] for k in sorted(topics.topics))
    field = None
    if ".jsonl:" in source:
        source, field = source.rsplit(":", 1)
    path = Path(source).expanduser()
    if path.is_dir():
        return _from_saved_dataset(path)
    if not path.is_file():
        raise ConfigError(f"text file {path} does not exist (text:FILE.txt, text:FILE.jsonl:FIELD, text:DIR "
                          f"of datasets.save_to_disk, or text:pydoc)")
    try:
        raw = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path} is not UTF-8 text (byte {exc.start}: {exc.reason})") from None
    if path.suffix == ".jsonl":
        raw = _jsonl(path, raw, field)
    if not raw.strip():
        raise ConfigError(f"{path} holds no text")
    return raw


def _jsonl(path: Path, raw: str, field: str | None) -> str:
    if field is None:
        raise ConfigError(f"{path} is JSON lines: name the field that holds the text, text:{path}:FIELD")
    parts = []
    for number, line in enumerate(raw.splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{path}:{number} is not JSON: {exc.msg}") from None
        if not isinstance(record, dict) or not isinstance(record.get(field), str):
            raise ConfigError(f"{path}:{number} has no text field {field!r} (a JSON object with a string there)")
        parts.append(record[field])
    return "\n\n".join(parts)


def _from_saved_dataset(path: Path) -> str:
    try:
        import datasets
    except ImportError:
        raise ConfigError(f"{path} is a folder: reading a datasets.save_to_disk folder needs the datasets "
                          f"library (pip install datasets)") from None
    try:
        data = datasets.load_from_disk(str(path))
    except (FileNotFoundError, ValueError) as exc:
        raise ConfigError(f"{path} is not a folder datasets.save_to_disk wrote: {exc}") from None
    if isinstance(data, datasets.DatasetDict):
        data = data[sorted(data)[0]]
    if "text" not in data.column_names:
        raise ConfigError(f"{path}: the dataset has no 'text' column (columns: {', '.join(data.column_names)})")
    return "\n\n".join(data["text"])


@dataclass
class TokenSplits:
    """Token ids of one text: the held-out stream and the calibration part after it (disjoint)."""

    held_out: torch.Tensor
    rest: torch.Tensor
    source: str

    def calibration(self, sequences: int, length: int, per_batch: int = 1) -> list[dict[str, torch.Tensor]]:
        """``sequences`` consecutive windows of ``length`` tokens after the held-out stream, as batches
        ``{"input_ids": [per_batch, length]}`` (the last one may hold fewer).

        Raises:
            ConfigError: if the text is too short for that many.
        """
        if sequences * length > len(self.rest):
            raise ConfigError(f"{self.source}: {sequences} calibration sequences of {length} tokens need "
                              f"{sequences * length:,} tokens after the held-out part; the text has "
                              f"{len(self.rest):,}. Use fewer or shorter sequences, or a longer text")
        windows = self.rest[:sequences * length].reshape(sequences, length)
        return [{"input_ids": chunk} for chunk in windows.split(per_batch)]


def token_splits(reference: str, tokenizer: Any, held_out: int = 16384, window: int = 512) -> TokenSplits:
    """Tokenize the text of ``reference`` and split off the first ``held_out`` tokens.

    Raises:
        ConfigError: if the text has fewer than ``held_out`` tokens plus one window after them, or not
            even one window of ``window`` tokens to measure.
    """
    text = read_text(reference)
    ids = torch.tensor(tokenizer(text, return_attention_mask=False)["input_ids"], dtype=torch.long)
    if len(ids) < window + 1:
        raise ConfigError(f"{reference}: {len(ids):,} tokens, too short for one window of {window} tokens")
    cut = min(held_out, len(ids) // 2)
    if cut < window + 1:
        raise ConfigError(f"{reference}: {len(ids):,} tokens; half of it, held out, is under one window of "
                          f"{window} tokens: use a longer text or a shorter window")
    return TokenSplits(ids[:cut], ids[cut:], reference)
