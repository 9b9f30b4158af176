"""Class prompts with a learned token, and the null prompt."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from tint_core.diffusion.backbone import Backbone


def class_prompt_ids(backbone: Backbone, template: str, init_words: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """Token ids of ``template`` filled with each init word, and the word's position in each prompt.

    Returns:
        ids (N, 77) and positions (N,): where each class's learned vector replaces the init word.
    """
    prefix = template.split("{}")[0]
    offset = 1 + len(backbone.tokenizer(prefix, add_special_tokens=False).input_ids) if prefix.strip() else 1
    ids = backbone.token_ids([template.format(word) for word in init_words])
    for row, word in enumerate(init_words):
        expected = backbone.word_token_id(word)
        if int(ids[row, offset]) != expected:
            raise ValueError(f"init word {word!r} does not tokenize on its own inside template {template!r}")
    return ids, torch.full((len(init_words),), offset, dtype=torch.long, device=ids.device)


def class_text_embeddings(
    backbone: Backbone, template: str, init_words: Sequence[str], vectors: torch.Tensor
) -> torch.Tensor:
    """(N, 77, width) embeddings of the class prompts with each class's token vector (N, width) injected."""
    ids, positions = class_prompt_ids(backbone, template, init_words)
    return backbone.text_embeddings(ids, positions, vectors.to(backbone.device))


def null_text_embedding(backbone: Backbone) -> torch.Tensor:
    """(77, width) float32 embedding of the empty prompt."""
    with torch.no_grad():
        return backbone.text_embeddings(backbone.token_ids([""]))[0]
