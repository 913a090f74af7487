"""Text corpora and their cutting into token windows.

Every corpus has two disjoint splits: "calibration" (for PCA / fitting) and "eval" (for measuring).

- "python-docs": the topic texts that Python's standard library ships in `pydoc_data.topics.topics`
  (offline, always available). Keys sorted; topics at even positions form the calibration split, odd ones
  the eval split; each split is its topics joined with "\\n\\n".
- "wikitext2": wikitext-2-raw-v1 through the `datasets` library (train → calibration, test → eval), lines
  joined with "\\n\\n" as SliceGPT/GPTQ do. Needs the Hugging Face hub, or its local cache together with
  HF_HUB_OFFLINE=1 / HF_DATASETS_OFFLINE=1.
- a path to a UTF-8 text file: split into paragraphs at blank lines (whitespace-only lines count as
  blank), paragraphs stripped, empty ones dropped; even paragraphs (0, 2, …) → calibration, odd → eval,
  each split joined with "\\n\\n".
- the named validation corpora of `sources.py` (stdlib-moddocs, stdlib-funcdocs, perldiag, git-relnotes,
  licenses, cmake-help, vim-help, coreutils-info): their text, split exactly like a text file's.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import torch
from einops import rearrange
from jaxtyping import Int
from torch import Tensor
from transformers import PreTrainedTokenizerBase

from ..errors import UsageError
from .models import hub_reachable
from .sources import SOURCES, source_text

CORPORA = ("python-docs", "wikitext2", *SOURCES)
CORPUS_HELP = f"{' | '.join(CORPORA)} | path to a UTF-8 text file"  # every --corpus option's help
SPLITS = ("calibration", "eval")


def _check_split(split: str) -> None:
    if split not in SPLITS:
        raise UsageError(f"unknown split {split!r}; choose one of: {', '.join(SPLITS)}")


def _even_odd(parts: list[str], split: str) -> str:
    """Even-indexed parts for calibration, odd-indexed for eval, joined by a blank line."""
    return "\n\n".join(parts[0::2] if split == "calibration" else parts[1::2])


def _paragraphs(text: str, split: str) -> str:
    """A split of a text: paragraphs at blank (or whitespace-only) lines, stripped, empty ones dropped."""
    paragraphs = [p.strip() for p in re.split(r"\n[ \t\r\f\v]*\n", text)]
    return _even_odd([p for p in paragraphs if p], split)


def python_docs_topics() -> dict[str, str]:
    """The pydoc topic texts as shipped by this Python (`pydoc_data.topics.topics`)."""
    from pydoc_data.topics import topics

    return dict(topics)


def load_text(corpus: str, split: str) -> str:
    """The raw text of one split of a corpus: a name from CORPORA or a path to a UTF-8 text file."""
    _check_split(split)
    if corpus == "python-docs":
        topics = python_docs_topics()
        return _even_odd([topics[k] for k in sorted(topics)], split)
    if corpus == "wikitext2":
        return _load_wikitext2(split)
    if corpus in SOURCES:
        return _paragraphs(source_text(corpus), split)
    path = Path(corpus).expanduser()
    if path.is_file():
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError as e:
            raise UsageError(f"corpus file {corpus!r} is not valid UTF-8 (byte {e.start})") from e
        return _paragraphs(text, split)
    if path.exists():
        raise UsageError(f"corpus path {corpus!r} is not a regular file")
    if os.sep in corpus or "." in corpus:
        raise UsageError(f"corpus file {corpus!r} does not exist")
    raise UsageError(f"unknown corpus {corpus!r}; choose one of: {', '.join(CORPORA)}, or a text file's path")


def datasets_offline() -> bool:
    """Whether the user said (HF_DATASETS_OFFLINE) that datasets come from the local cache: then no hub
    probe is made for them, and a dataset missing from the cache fails when it is loaded."""
    return os.environ.get("HF_DATASETS_OFFLINE", "") not in ("", "0")


def _load_wikitext2(split: str) -> str:
    """wikitext-2-raw-v1 via `datasets`; a one-line UsageError when neither the hub nor the cache has it."""
    from huggingface_hub import constants

    if not (constants.HF_HUB_OFFLINE or datasets_offline()) and not hub_reachable():
        raise UsageError(
            "corpus 'wikitext2' needs the Hugging Face hub, which cannot be reached "
            "(set HF_DATASETS_OFFLINE=1 to use a locally cached copy)"
        )
    import datasets

    try:
        ds = datasets.load_dataset(
            "wikitext", "wikitext-2-raw-v1", split="train" if split == "calibration" else "test"
        )
    except Exception as e:  # datasets raises many types (ConnectionError, FileNotFoundError, ...)
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise UsageError(f"corpus 'wikitext2' could not be loaded: {first}") from e
    return "\n\n".join(ds["text"])


def spread(n: int, k: int) -> list[int]:
    """`k` of the indices 0..n−1, evenly spaced and centred (all of them when k ≥ n)."""
    if k >= n:
        return list(range(n))
    return [int((i + 0.5) * n / k) for i in range(k)]


def windows(
    tokenizer: PreTrainedTokenizerBase, text: str, seqlen: int, max_windows: int | None = None
) -> Int[Tensor, "n seqlen"]:
    """Tokenise `text` and cut it into non-overlapping windows of `seqlen` tokens, dropping the last partial
    one. A tokenizer that adds a BOS token (Gemma 3; SmolLM2 adds none) gets it at the start of EVERY
    window, followed by `seqlen` − 1 text tokens: such a model was trained to see BOS first (Gemma 3 270M
    on python-docs: perplexity 13.5 with it, 43.6 without), and every window still predicts `seqlen` − 1
    tokens. With `max_windows` fewer than that, keep `max_windows` windows evenly spaced over the text
    (`spread`), in order: a subsample covers the whole split — our corpora are sorted by topic or module,
    so the first windows are one corner of it.
    """
    if seqlen < 2:
        raise UsageError(f"seqlen must be at least 2 (one input and one predicted token), got {seqlen}")
    if max_windows is not None and max_windows < 1:
        raise UsageError(f"max-windows must be at least 1, got {max_windows}")
    ids = tokenizer(text, verbose=False)["input_ids"]
    bos = bos_prefix(tokenizer, ids)
    body = ids[len(bos):]
    step = seqlen - len(bos)
    n = len(body) // step
    if n == 0:
        raise UsageError(f"text has {len(ids)} tokens, shorter than one window of seqlen {seqlen}")
    out = rearrange(torch.tensor(body[: n * step], dtype=torch.long), "(n s) -> n s", s=step)
    out = torch.cat([torch.tensor(bos, dtype=torch.long).expand(n, len(bos)), out], dim=1)  # (n, seqlen)
    return out if max_windows is None or max_windows >= n else out[spread(n, max_windows)]


def bos_prefix(tokenizer: PreTrainedTokenizerBase, ids: list[int]) -> list[int]:
    """[bos_token_id] when the tokenizer put its BOS token in front of `ids` (it adds one by default);
    else []."""
    bos = tokenizer.bos_token_id
    return [bos] if bos is not None and ids and ids[0] == bos else []


def load_windows(
    tokenizer: PreTrainedTokenizerBase, corpus: str, split: str, seqlen: int, max_windows: int | None = None
) -> Int[Tensor, "n seqlen"]:
    """`windows(tokenizer, load_text(corpus, split), seqlen, max_windows)`."""
    if seqlen < 2:  # fail before reading (or downloading) the corpus
        raise UsageError(f"seqlen must be at least 2 (one input and one predicted token), got {seqlen}")
    return windows(tokenizer, load_text(corpus, split), seqlen, max_windows)
