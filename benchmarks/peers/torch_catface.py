"""The same networks and steps in PyTorch, for `benchmarks/run.py --peer`.

A plain iResNet (insightface layout: conv3x3-BN-PReLU stem; blocks
BN-conv-BN-PReLU-conv-BN with a 1x1 conv or subsampling shortcut; BN,
dropout, flatten, linear, BN output) and the CATFace stage-1 network with
the same shapes as `MultiBranchModel` (shared stages 1-3, per-branch stage 4
and self-attention, AdaFace head, attribute BCE, cosine distillation), each
with an SGD step (momentum 0.9, weight decay 5e-4, clipping to norm 5).
Written for timing: the numerics follow the Keras model but are not tested
against it.
"""

import math

import torch
from torch import nn
from torch.nn import functional as F

BACKBONES = {
    "ir_18": ((2, 2, 2, 2), (64, 128, 256, 512)),
    "ir_50": ((3, 4, 14, 3), (64, 128, 256, 512)),
    "ir_tiny": ((1, 1, 1, 1), (16, 32, 48, 64)),
}


class Block(nn.Module):
    def __init__(self, in_channels, filters, stride):
        super().__init__()
        self.residual = nn.Sequential(
            nn.BatchNorm2d(in_channels, eps=1e-5),
            nn.Conv2d(in_channels, filters, 3, 1, 1, bias=False),
            nn.BatchNorm2d(filters, eps=1e-5),
            nn.PReLU(filters),
            nn.Conv2d(filters, filters, 3, stride, 1, bias=False),
            nn.BatchNorm2d(filters, eps=1e-5),
        )
        if in_channels == filters:
            self.shortcut = nn.MaxPool2d(1, stride) if stride > 1 else nn.Identity()
        else:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, filters, 1, stride, bias=False), nn.BatchNorm2d(filters)
            )

    def forward(self, x):
        return self.shortcut(x) + self.residual(x)


def stage(in_channels, filters, blocks):
    layers = [Block(in_channels, filters, 2)]
    layers += [Block(filters, filters, 1) for _ in range(blocks - 1)]
    return nn.Sequential(*layers)


def stem(filters):
    return nn.Sequential(
        nn.Conv2d(3, filters, 3, 1, 1, bias=False), nn.BatchNorm2d(filters), nn.PReLU(filters)
    )


class EmbeddingHead(nn.Module):
    def __init__(self, channels, side, embedding_dim, dropout):
        super().__init__()
        self.bn = nn.BatchNorm2d(channels)
        self.dropout = nn.Dropout(dropout)
        self.dense = nn.Linear(channels * side * side, embedding_dim)
        self.out_bn = nn.BatchNorm1d(embedding_dim, affine=False)

    def forward(self, x):
        return self.out_bn(self.dense(torch.flatten(self.dropout(self.bn(x)), 1)))


class PlainIResNet(nn.Module):
    """IR-18 to a 512-d embedding and a linear classifier (the bare backbone step)."""

    def __init__(self, num_classes, image_size=112, embedding_dim=512, backbone="ir_18"):
        super().__init__()
        blocks, widths = BACKBONES[backbone]
        layers = [stem(widths[0])]
        channels = widths[0]
        for count, width in zip(blocks, widths):
            layers.append(stage(channels, width, count))
            channels = width
        self.body = nn.Sequential(*layers)
        self.head = EmbeddingHead(channels, image_size // 16, embedding_dim, 0.4)
        self.classifier = nn.Linear(embedding_dim, num_classes)

    def forward(self, images, labels):
        x = (images / 255.0 - 0.5) / 0.5
        logits = self.classifier(self.head(self.body(x)))
        return F.cross_entropy(logits.float(), labels)


class SelfAttention(nn.Module):
    def __init__(self, channels):
        super().__init__()
        key_dim = max(channels // 8, 1)
        self.query = nn.Linear(channels, key_dim)
        self.key = nn.Linear(channels, key_dim)
        self.value = nn.Linear(channels, channels)
        self.gamma = nn.Parameter(torch.zeros(()))

    def forward(self, x):
        batch, channels, height, width = x.shape
        tokens = x.flatten(2).transpose(1, 2)
        query, key, value = self.query(tokens), self.key(tokens), self.value(tokens)
        scores = (query @ key.transpose(1, 2)).float() / math.sqrt(query.shape[-1])
        attention = scores.softmax(-1)
        attended = (attention.to(value.dtype) @ value).transpose(1, 2).reshape(x.shape)
        return x + self.gamma * attended, attention, value


def adaface_logits(embeddings, kernel, labels, stats, m=0.4, h=0.333, s=64.0, eps=1e-3):
    """AdaFace on float32 embeddings; updates `stats` (mean, std) in place."""
    norms = embeddings.norm(dim=1, keepdim=True).clamp(0.001, 100).detach()
    cosine = F.normalize(embeddings) @ F.normalize(kernel, dim=0)
    cosine = cosine.clamp(-1 + eps, 1 - eps)
    with torch.no_grad():
        stats[0] = 0.01 * norms.mean() + 0.99 * stats[0]
        stats[1] = 0.01 * norms.std() + 0.99 * stats[1]
    scaler = ((norms - stats[0]) / (stats[1] + eps) * h).clamp(-1, 1)
    one_hot = F.one_hot(labels, kernel.shape[1]).to(cosine.dtype)
    theta = torch.acos(cosine).add(-m * scaler * one_hot).clamp(eps, math.pi - eps)
    return (torch.cos(theta) - one_hot * (m + m * scaler)) * s


def cosine_distance(hq, lq):
    hq, lq = hq.detach().flatten(1).float(), lq.flatten(1).float()
    return (1 - F.cosine_similarity(hq, lq, dim=1)).mean()


class Stage1(nn.Module):
    """CATFace stage 1: shared IR-18 stages 1-3, FR and SB branches (stage 4 + attention)."""

    def __init__(self, num_classes, image_size=112, embedding_dim=512, num_attributes=5,
                 backbone="ir_18"):
        super().__init__()
        blocks, widths = BACKBONES[backbone]
        self.trunk = nn.Sequential(
            stem(widths[0]),
            stage(widths[0], widths[0], blocks[0]),
            stage(widths[0], widths[1], blocks[1]),
            stage(widths[1], widths[2], blocks[2]),
        )
        side = image_size // 16
        self.branches = nn.ModuleDict({
            name: nn.ModuleDict({
                "stage": stage(widths[2], widths[3], blocks[3]),
                "attention": SelfAttention(widths[3]),
            })
            for name in ("fr", "sb")
        })
        self.embedding = EmbeddingHead(widths[3], side, embedding_dim, 0.4)
        self.attribute_bn = nn.BatchNorm2d(widths[3])
        self.attribute_dropout = nn.Dropout(0.4)
        self.attributes = nn.Linear(widths[3] * side * side, num_attributes)
        self.kernel = nn.Parameter(torch.randn(embedding_dim, num_classes) / math.sqrt(embedding_dim))
        self.register_buffer("stats", torch.tensor([20.0, 100.0]))

    def forward(self, hq, lq, identity, attributes):
        batch = hq.shape[0]
        x = (torch.cat([hq, lq]) / 255.0 - 0.5) / 0.5
        x = self.trunk(x)
        outputs = {}
        for name, branch in self.branches.items():
            outputs[name] = branch["attention"](branch["stage"](x))
        embedding = self.embedding(outputs["fr"][0]).float()
        labels = torch.cat([identity, identity])
        logits = adaface_logits(embedding, self.kernel, labels, self.stats)
        fr_loss = F.cross_entropy(logits, labels)
        attribute_logits = self.attributes(
            torch.flatten(self.attribute_dropout(self.attribute_bn(outputs["sb"][0])), 1)
        ).float()
        targets = torch.cat([attributes, attributes]).float()
        sb_loss = F.binary_cross_entropy_with_logits(attribute_logits, targets)
        distillation = {
            name: cosine_distance(att[:batch], att[batch:]) + cosine_distance(v[:batch], v[batch:])
            for name, (_, att, v) in outputs.items()
        }
        return 3.0 * (fr_loss + distillation["fr"]) + sb_loss + distillation["sb"]


def make_step(model, inputs, channels_last=False, bf16=False, fp16=False, compile=False,
              device="cpu"):
    """A zero-argument function running one SGD step of `model(*inputs)` on `device`.

    `bf16` / `fp16`: autocast to that dtype (`fp16` with a `GradScaler`, as AMP training
    does); `compile`: the forward pass through `torch.compile` (compiled on the first
    call, which the caller's warm-up absorbs). The step ends on `float(loss)`, which
    waits for the device.
    """
    model = model.to(device)
    inputs = [x.to(device) for x in inputs]
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
        inputs = [
            x.contiguous(memory_format=torch.channels_last) if x.dim() == 4 else x for x in inputs
        ]
    model.train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    forward = torch.compile(model) if compile else model
    device_type = torch.device(device).type
    dtype = torch.float16 if fp16 else torch.bfloat16
    scaler = torch.amp.GradScaler(device_type, enabled=fp16)

    def step():
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast(device_type, dtype=dtype, enabled=bf16 or fp16):
            loss = forward(*inputs)
        scaler.scale(loss).backward()
        scaler.unscale_(optimizer)
        torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        scaler.step(optimizer)
        scaler.update()
        return float(loss.detach())

    return step


CONFIGURATIONS = {
    "float32": {},
    "channels_last": {"channels_last": True},
    "bf16_autocast_channels_last": {"channels_last": True, "bf16": True},
    "amp_fp16_channels_last": {"channels_last": True, "fp16": True},
    "amp_fp16_channels_last_compiled": {"channels_last": True, "fp16": True, "compile": True},
    "bf16_autocast_channels_last_compiled": {"channels_last": True, "bf16": True,
                                             "compile": True},
}


def device_configurations(cuda, compile=True):
    """The configurations worth timing on this device: AMP float16 + channels_last (with and
    without `torch.compile`) on CUDA; float32, channels_last and bf16 autocast on a CPU
    (and bf16 compiled with `compile`)."""
    if cuda:
        names = ["amp_fp16_channels_last", "amp_fp16_channels_last_compiled"]
    else:
        names = ["float32", "channels_last", "bf16_autocast_channels_last"]
        if compile:
            names.append("bf16_autocast_channels_last_compiled")
    return names if compile else [name for name in names if not name.endswith("_compiled")]


def stage1_inputs(pairs, image_size, num_classes, seed=0):
    generator = torch.Generator().manual_seed(seed)
    shape = (pairs, 3, image_size, image_size)
    return [
        torch.rand(shape, generator=generator) * 255,
        torch.rand(shape, generator=generator) * 255,
        torch.randint(0, num_classes, (pairs,), generator=generator),
        torch.randint(0, 2, (pairs, 5), generator=generator),
    ]


def plain_inputs(batch, image_size, num_classes, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return [
        torch.rand((batch, 3, image_size, image_size), generator=generator) * 255,
        torch.randint(0, num_classes, (batch,), generator=generator),
    ]


def peer_steps(kind, size, image_size, num_classes, configuration, backbone="ir_18",
               device="cpu"):
    """`(step_fn, images_per_step)` for kind "stage1" (size = pairs) or "plain"."""
    torch.manual_seed(0)
    options = CONFIGURATIONS[configuration]
    if kind == "stage1":
        model = Stage1(num_classes, image_size, backbone=backbone)
        return (make_step(model, stage1_inputs(size, image_size, num_classes), device=device,
                          **options), 2 * size)
    model = PlainIResNet(num_classes, image_size, backbone=backbone)
    return (make_step(model, plain_inputs(size, image_size, num_classes), device=device,
                      **options), size)
