"""Tiny transformers classifiers with fixed outputs, saved and loaded back through
from_pretrained like any real moderation model. Their final layer has zero weights and a bias
chosen so that the predicted probabilities are exactly what a test needs, for any input."""

from __future__ import annotations

import math
from pathlib import Path

import torch


def _fixed_head(linear: torch.nn.Linear, probabilities: list[float]) -> None:
    with torch.no_grad():
        linear.weight.zero_()
        linear.bias.copy_(torch.tensor([math.log(p) for p in probabilities]))


def save_image_classifier(directory: Path, labels: list[str], probabilities: list[float]) -> Path:
    from transformers import ViTConfig, ViTForImageClassification, ViTImageProcessor

    torch.manual_seed(0)
    config = ViTConfig(
        image_size=32, patch_size=16, num_channels=3, hidden_size=16, num_hidden_layers=1,
        num_attention_heads=2, intermediate_size=32,
        id2label=dict(enumerate(labels)), label2id={label: i for i, label in enumerate(labels)},
    )  # fmt: skip
    model = ViTForImageClassification(config)
    _fixed_head(model.classifier, probabilities)
    model.save_pretrained(directory)
    ViTImageProcessor(size={"height": 32, "width": 32}).save_pretrained(directory)
    return directory


def save_text_classifier(directory: Path, labels: list[str], probabilities: list[float]) -> Path:
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizer

    directory.mkdir(parents=True, exist_ok=True)
    vocab = directory / "vocab.txt"
    vocab.write_text(
        "\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *"abcdefghijklmnopqrstuvwxyz"])
    )
    BertTokenizer(vocab_file=str(vocab)).save_pretrained(directory)
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=31, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
        intermediate_size=32, max_position_embeddings=64,
        id2label=dict(enumerate(labels)), label2id={label: i for i, label in enumerate(labels)},
    )  # fmt: skip
    model = BertForSequenceClassification(config)
    _fixed_head(model.classifier, probabilities)
    model.save_pretrained(directory)
    return directory
