"""The published PyTorch iResNets, written from their public definitions, for the import tests.

`AdaFaceIR` follows AdaFace's `net.py` (`Backbone` with `BasicBlockIR`, module
names `input_layer`, `body`, `output_layer`) and `InsightFaceIR` insightface's
`arcface_torch/backbones/iresnet.py` (`IResNet` with `IBasicBlock`). Only the
structure and the parameter names matter: the tests give them random weights.
"""

import argparse

import torch
from torch import nn

WIDTHS = (64, 128, 256, 512)
LAYERS = {"ir_18": (2, 2, 2, 2), "ir_34": (3, 4, 6, 3), "ir_50": (3, 4, 14, 3), "ir_100": (3, 13, 30, 3)}


class AdaFaceBlock(nn.Module):
    """BasicBlockIR: BN-conv-BN-PReLU-conv(stride)-BN, shortcut subsampling or 1x1 conv + BN."""

    def __init__(self, in_channels, channels, stride):
        super().__init__()
        if in_channels == channels:
            self.shortcut_layer = nn.MaxPool2d(1, stride)
        else:
            self.shortcut_layer = nn.Sequential(
                nn.Conv2d(in_channels, channels, 1, stride, bias=False), nn.BatchNorm2d(channels)
            )
        self.res_layer = nn.Sequential(
            nn.BatchNorm2d(in_channels),
            nn.Conv2d(in_channels, channels, 3, 1, 1, bias=False),
            nn.BatchNorm2d(channels),
            nn.PReLU(channels),
            nn.Conv2d(channels, channels, 3, stride, 1, bias=False),
            nn.BatchNorm2d(channels),
        )

    def forward(self, x):
        return self.res_layer(x) + self.shortcut_layer(x)


class AdaFaceIR(nn.Module):
    """AdaFace's `Backbone(input_size=(112, 112), num_layers, "ir")`; takes BGR."""

    def __init__(self, layers):
        super().__init__()
        self.input_layer = nn.Sequential(nn.Conv2d(3, 64, 3, 1, 1, bias=False), nn.BatchNorm2d(64), nn.PReLU(64))
        blocks, in_channels = [], 64
        for channels, count in zip(WIDTHS, layers):
            for index in range(count):
                blocks.append(AdaFaceBlock(in_channels, channels, 2 if index == 0 else 1))
                in_channels = channels
        self.body = nn.Sequential(*blocks)
        self.output_layer = nn.Sequential(
            nn.BatchNorm2d(512),
            nn.Dropout(0.4),
            nn.Flatten(),
            nn.Linear(512 * 7 * 7, 512),
            nn.BatchNorm1d(512, affine=False),
        )

    def forward(self, x):
        # AdaFace returns (x / |x|, |x|); the product is the embedding compared here.
        return self.output_layer(self.body(self.input_layer(x)))


class InsightFaceBlock(nn.Module):
    """IBasicBlock: bn1-conv1-bn2-prelu-conv2(stride)-bn3, `downsample` 1x1 conv + BN."""

    def __init__(self, in_channels, channels, stride, downsample):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_channels, eps=1e-05)
        self.conv1 = nn.Conv2d(in_channels, channels, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels, eps=1e-05)
        self.prelu = nn.PReLU(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, stride, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(channels, eps=1e-05)
        self.downsample = downsample

    def forward(self, x):
        out = self.bn3(self.conv2(self.prelu(self.bn2(self.conv1(self.bn1(x))))))
        return out + (self.downsample(x) if self.downsample is not None else x)


class InsightFaceIR(nn.Module):
    """arcface_torch's `IResNet(IBasicBlock, layers)`; takes RGB."""

    def __init__(self, layers, num_features=512):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(64, eps=1e-05)
        self.prelu = nn.PReLU(64)
        in_channels = 64
        for stage, (channels, count) in enumerate(zip(WIDTHS, layers), start=1):
            # Every stage starts at stride 2, so every first block has a downsample.
            downsample = nn.Sequential(
                nn.Conv2d(in_channels, channels, 1, 2, bias=False), nn.BatchNorm2d(channels, eps=1e-05)
            )
            blocks = [InsightFaceBlock(in_channels, channels, 2, downsample)]
            blocks += [InsightFaceBlock(channels, channels, 1, None) for _ in range(count - 1)]
            setattr(self, f"layer{stage}", nn.Sequential(*blocks))
            in_channels = channels
        self.bn2 = nn.BatchNorm2d(512, eps=1e-05)
        self.dropout = nn.Dropout(p=0.0)
        self.fc = nn.Linear(512 * 7 * 7, num_features)
        self.features = nn.BatchNorm1d(num_features, eps=1e-05)
        nn.init.constant_(self.features.weight, 1.0)
        self.features.weight.requires_grad = False

    def forward(self, x):
        x = self.prelu(self.bn1(self.conv1(x)))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        x = self.dropout(torch.flatten(self.bn2(x), 1))
        return self.features(self.fc(x))


def randomise(model, seed):
    """Random weights, BN statistics and affine parameters, PReLU slopes; eval mode.

    BN statistics stay near the activations' own scale so that 24+ blocks
    neither explode nor vanish.
    """
    generator = torch.Generator().manual_seed(seed)

    def uniform(shape, low, high):
        return low + (high - low) * torch.rand(shape, generator=generator)

    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, (nn.Conv2d, nn.Linear)):
                fan_in = module.weight[0].numel()
                module.weight.copy_(torch.randn(module.weight.shape, generator=generator) / fan_in**0.5)
                if module.bias is not None:
                    module.bias.copy_(0.1 * torch.randn(module.bias.shape, generator=generator))
            elif isinstance(module, nn.PReLU):
                module.weight.copy_(uniform(module.weight.shape, 0.05, 0.5))
            elif isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d)):
                channels = module.running_mean.shape
                module.running_mean.copy_(0.2 * torch.randn(channels, generator=generator))
                module.running_var.copy_(uniform(channels, 0.5, 2.0))
                module.num_batches_tracked.fill_(1000)
                if module.affine:
                    module.weight.copy_(uniform(channels, 0.5, 1.5))
                    module.bias.copy_(0.2 * torch.randn(channels, generator=generator))
    return model.eval()


def adaface_input(rgb):
    """AdaFace's preprocessing of `(N, H, W, 3)` RGB uint8: BGR, (x / 255 - 0.5) / 0.5, NCHW."""
    bgr = rgb[..., ::-1].astype("float32")
    return torch.from_numpy(((bgr / 255.0 - 0.5) / 0.5).transpose(0, 3, 1, 2).copy())


def insightface_input(rgb):
    """insightface's preprocessing: RGB, (x / 255 - 0.5) / 0.5, NCHW."""
    return torch.from_numpy(((rgb.astype("float32") / 255.0 - 0.5) / 0.5).transpose(0, 3, 1, 2).copy())


class AttributeDict(dict):
    """Stands for PyTorch Lightning's hyper-parameter dict (a dict subclass)."""


class ModelCheckpoint:
    """Stands for the Lightning callback class that keys a checkpoint's callback states."""


def save_adaface_checkpoint(model, path):
    """A Lightning-style checkpoint: `state_dict` with `model.` keys, the head beside them.

    Like a real one, it also holds objects of classes the reader must not
    import: a dict subclass, a plain object and a class used as a dict key.
    """
    state = {f"model.{key}": value for key, value in model.state_dict().items()}
    state["head.kernel"] = torch.randn(512, 10)
    state["head.t"] = torch.zeros(1)
    torch.save(
        {
            "epoch": 25,
            "global_step": 1000,
            "pytorch-lightning_version": "1.8.6",
            "state_dict": state,
            # Objects of classes outside the allow-list, pickled without a call (NEWOBJ).
            "hyper_parameters": AttributeDict(arch="ir_50", lr=0.1),
            "hparams_namespace": argparse.Namespace(arch="ir_50"),
            "callbacks": {ModelCheckpoint: {"best_model_score": torch.tensor(0.9)}},
        },
        path,
    )


def save_insightface_checkpoint(model, path, zip_format=True):
    """arcface_torch's `torch.save(backbone.state_dict(), "model.pt")`."""
    torch.save(model.state_dict(), path, _use_new_zipfile_serialization=zip_format)
