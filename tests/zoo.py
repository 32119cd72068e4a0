"""The structure test zoo: hand-written models and Hugging Face architectures built from small configs
(random weights, no hub). Each entry builds ``(model, example_inputs, fresh_inputs)``: ``fresh_inputs``
has another batch size (and sequence length) than the example."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class ResidualCNN(nn.Module):
    """Two residual stages; the second starts with a strided 3x3 conv and a strided 1x1 shortcut."""

    def __init__(self, classes: int = 10):
        super().__init__()
        self.stem, self.bn0 = nn.Conv2d(3, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16)
        self.a1, self.bn1 = nn.Conv2d(16, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16)
        self.a2, self.bn2 = nn.Conv2d(16, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16)
        self.b1, self.bn3 = nn.Conv2d(16, 32, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(32)
        self.b2, self.bn4 = nn.Conv2d(32, 32, 3, padding=1, bias=False), nn.BatchNorm2d(32)
        self.shortcut, self.bn_sc = nn.Conv2d(16, 32, 1, stride=2, bias=False), nn.BatchNorm2d(32)
        self.fc = nn.Linear(32, classes)

    def forward(self, x):
        x = F.relu(self.bn0(self.stem(x)))
        x = F.relu(x + self.bn2(self.a2(F.relu(self.bn1(self.a1(x))))))
        y = self.bn4(self.b2(F.relu(self.bn3(self.b1(x)))))
        x = F.relu(y + self.bn_sc(self.shortcut(x)))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


class ConcatDepthwiseCNN(nn.Module):
    """Two branches joined by cat, a depthwise-separable conv, a GLU-style chunk, then flatten into a Linear."""

    def __init__(self, classes: int = 10):
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.left, self.right = nn.Conv2d(8, 6, 1), nn.Conv2d(8, 10, 3, padding=1)
        self.depthwise = nn.Conv2d(16, 16, 3, padding=1, groups=16)
        self.pointwise, self.bn = nn.Conv2d(16, 24, 1), nn.BatchNorm2d(24)
        self.head_conv = nn.Conv2d(12, 4, 1)
        self.fc = nn.Linear(4 * 4 * 4, classes)

    def forward(self, x):
        x = F.relu(self.stem(x))
        x = torch.cat([self.left(x), self.right(x)], dim=1)
        x = self.bn(self.pointwise(F.relu(self.depthwise(x))))
        a, b = torch.chunk(x, 2, dim=1)
        x = F.adaptive_avg_pool2d(self.head_conv(a * torch.sigmoid(b)), 4)
        return self.fc(x.view(x.size(0), -1))


class AttentionModel(nn.Module):
    """Embedding, nn.MultiheadAttention, LayerNorms and an MLP; mean-pooled into a classifier."""

    def __init__(self, vocab: int = 50, width: int = 32, classes: int = 5):
        super().__init__()
        self.embed = nn.Embedding(vocab, width)
        self.attention = nn.MultiheadAttention(width, 4, batch_first=True)
        self.norm1, self.norm2 = nn.LayerNorm(width), nn.LayerNorm(width)
        self.fc1, self.fc2 = nn.Linear(width, 64), nn.Linear(64, width)
        self.head = nn.Linear(width, classes)

    def forward(self, ids):
        h = self.embed(ids)
        a, _ = self.attention(h, h, h, need_weights=False)
        h = self.norm1(h + a)
        h = self.norm2(h + self.fc2(F.gelu(self.fc1(h))))
        return self.head(h.mean(dim=1))


def _images(batch: int, size: int = 16):
    return torch.randn(batch, 3, size, size)


def _ids(batch: int, length: int, vocab: int = 50):
    return torch.randint(0, vocab, (batch, length))


def hand_written():
    return {
        "residual_cnn": lambda: (ResidualCNN(), _images(2), _images(3)),
        "concat_depthwise_cnn": lambda: (ConcatDepthwiseCNN(), _images(2), _images(5)),
        "multihead_attention": lambda: (AttentionModel(), _ids(2, 7), _ids(3, 11)),
    }


def hugging_face():
    import transformers as T

    def images(batch):
        return {"pixel_values": torch.randn(batch, 3, 32, 32)}

    def tokens(batch, length):
        ids = _ids(batch, length)
        return {"input_ids": ids, "attention_mask": torch.ones_like(ids)}

    return {
        "hf_resnet": lambda: (T.ResNetForImageClassification(T.ResNetConfig(
            num_channels=3, embedding_size=8, hidden_sizes=[16, 32], depths=[1, 1], layer_type="bottleneck",
            num_labels=10)), images(2), images(3)),
        "hf_mobilenet_v2": lambda: (T.MobileNetV2ForImageClassification(T.MobileNetV2Config(
            image_size=32, depth_multiplier=0.35, num_labels=10)), images(2), images(3)),
        "hf_vit": lambda: (T.ViTForImageClassification(T.ViTConfig(
            image_size=32, patch_size=8, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
            intermediate_size=64, num_labels=10)), images(2), images(3)),
        "hf_bert": lambda: (T.BertForSequenceClassification(T.BertConfig(
            vocab_size=50, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
            max_position_embeddings=64, num_labels=3)), tokens(2, 8), tokens(3, 13)),
        "hf_gpt2": lambda: (T.GPT2LMHeadModel(T.GPT2Config(
            vocab_size=50, n_positions=64, n_embd=32, n_layer=2, n_head=4, use_cache=False)),
            {"input_ids": _ids(2, 8)}, {"input_ids": _ids(3, 13)}),
        "hf_llama_gqa": lambda: (T.LlamaForCausalLM(T.LlamaConfig(
            vocab_size=50, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
            num_key_value_heads=2, max_position_embeddings=64, use_cache=False)),
            {"input_ids": _ids(2, 8)}, {"input_ids": _ids(3, 13)}),
    }


def build(name: str, seed: int = 0):
    torch.manual_seed(seed)
    builders = {**hand_written(), **hugging_face()}
    model, example, fresh = builders[name]()
    return model.eval(), example, fresh


NAMES = [*hand_written(), "hf_resnet", "hf_mobilenet_v2", "hf_vit", "hf_bert", "hf_gpt2", "hf_llama_gqa"]
