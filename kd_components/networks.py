"""Network-side pieces of distillation: a forward hook that keeps a layer's output, the student's feature adapter,
and the main output of networks with deep supervision."""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["FeatureAdapter", "FeatureHook", "main_output"]


def main_output(out):
    """Networks with deep supervision return a list or tuple of heads; distillation uses the first (main) one."""
    return out[0] if isinstance(out, (list, tuple)) else out


class FeatureHook:
    """Keeps the output of the module named ``layer`` of ``network`` at each forward pass.

    Works on a network wrapped in ``DistributedDataParallel`` (names are looked up under ``.module`` too).

    Example::

        hook = FeatureHook(student, "down_layers.3")   # SegResNet's bottleneck
        logits = student(x)
        features = hook.pop()                           # BCHWD, None when no forward ran since the last pop

    Raises:
        ValueError: no module of that name, listing the top-level names to choose from.
    """

    def __init__(self, network: nn.Module, layer: str):
        modules = dict(network.named_modules())
        if layer not in modules and f"module.{layer}" in modules:
            layer = f"module.{layer}"
        if layer not in modules:
            top = [n for n, _ in network.named_children()]
            raise ValueError(
                f"feature layer '{layer}' is not a module of {type(network).__name__}; its top-level modules are "
                f"{top} (nested names use dots, e.g. 'down_layers.3')."
            )
        self.layer = layer
        self.output: torch.Tensor | None = None
        self._handle = modules[layer].register_forward_hook(self._keep)

    def _keep(self, module: nn.Module, args, output) -> None:
        self.output = output[0] if isinstance(output, (tuple, list)) else output

    def pop(self) -> torch.Tensor | None:
        """The output of the last forward pass, and forget it (a stale map is never handed out twice)."""
        out, self.output = self.output, None
        return out

    def remove(self) -> None:
        self._handle.remove()


class FeatureAdapter(nn.Module):
    """The student's learnable 1x1x1 (1x1 in 2-D) convolution to the teacher's feature width (FitNets' regressor).

    An identity (no parameters) when the widths are equal, so a checkpoint or optimizer can always hold it. It
    trains with the student and is not part of the student network, whose checkpoint stays deployable as is.

    Args:
        student_channels: channels of the student's feature map.
        teacher_channels: channels of the teacher's feature map.
        always: add the convolution even when the widths are equal.
        spatial_dims: 3 (BCHWD feature maps) or 2 (BCHW), as MONAI's networks name it.

    Raises:
        ValueError: a channel count < 1, ``spatial_dims`` other than 2 or 3.
    """

    def __init__(self, student_channels: int, teacher_channels: int, always: bool = False, spatial_dims: int = 3):
        super().__init__()
        if spatial_dims not in (2, 3):
            raise ValueError(f"spatial_dims must be 2 or 3, got {spatial_dims}.")
        self.spatial_dims = int(spatial_dims)
        self.student_channels, self.teacher_channels = int(student_channels), int(teacher_channels)
        if min(self.student_channels, self.teacher_channels) < 1:
            raise ValueError(
                f"feature channels must be >= 1, got student {student_channels} and teacher {teacher_channels}."
            )
        needed = always or self.student_channels != self.teacher_channels
        conv = nn.Conv3d if self.spatial_dims == 3 else nn.Conv2d
        self.conv = conv(self.student_channels, self.teacher_channels, kernel_size=1) if needed else None

    @property
    def trainable(self) -> bool:
        """Whether the adapter has parameters (the widths differ, or ``always``)."""
        return self.conv is not None

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """
        Args:
            features: BCHWD (BCHW for ``spatial_dims=2``) with C = ``student_channels``.

        Raises:
            ValueError: another channel count (the shape is printed).
        """
        if features.shape[1] != self.student_channels:
            raise ValueError(
                f"FeatureAdapter expects {self.student_channels} student feature channels, got shape "
                f"{tuple(features.shape)}: set feature_channels to the width of the student's feature layer."
            )
        return features if self.conv is None else self.conv(features)
