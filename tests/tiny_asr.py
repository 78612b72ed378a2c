"""A tiny local CTC model for the CER code path: random wav2vec2 layers and an output layer that always says `a`."""

from __future__ import annotations

import json
from pathlib import Path


def save_tiny_ctc(folder: Path, sampling_rate: int = 16000) -> Path:
    """Save a `Wav2Vec2ForCTC` + `Wav2Vec2Processor` (characters `a`, `b`) whose greedy transcript of any clip is `a`.

    The output layer's weights are zero and its bias prefers `a`, so the transcript is known exactly: CER through it
    is a number a test can predict.
    """
    import torch
    from transformers import (
        Wav2Vec2Config,
        Wav2Vec2CTCTokenizer,
        Wav2Vec2FeatureExtractor,
        Wav2Vec2ForCTC,
        Wav2Vec2Processor,
    )

    folder.mkdir(parents=True, exist_ok=True)
    vocabulary = {"<pad>": 0, "|": 1, "<unk>": 2, "a": 3, "b": 4}
    (folder / "vocab.json").write_text(json.dumps(vocabulary))
    tokenizer = Wav2Vec2CTCTokenizer(folder / "vocab.json", word_delimiter_token="|")
    extractor = Wav2Vec2FeatureExtractor(sampling_rate=sampling_rate, do_normalize=True, return_attention_mask=False)
    config = Wav2Vec2Config(
        vocab_size=len(vocabulary), hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
        conv_dim=(8, 8), conv_stride=(5, 4), conv_kernel=(10, 4), num_conv_pos_embeddings=8,
        num_conv_pos_embedding_groups=2, pad_token_id=0,
    )  # fmt: skip
    model = Wav2Vec2ForCTC(config)
    with torch.no_grad():
        model.lm_head.weight.zero_()
        model.lm_head.bias.copy_(torch.tensor([0.0, 0.0, 0.0, 5.0, 0.0]))
    model.save_pretrained(folder)
    Wav2Vec2Processor(feature_extractor=extractor, tokenizer=tokenizer).save_pretrained(folder)
    return folder
