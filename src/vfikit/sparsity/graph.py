"""Which convolution channels of an AdaCoF-family network (AdaCoF, compressed AdaCoF, CDFI) prune together.

A :class:`ChannelSet` is one width of the channel spec: the output channels of its producer convs
and the input channels of its consumer convs. Skip additions tie sets: ``conv_k``'s last conv and
``upsample_k`` add into one tensor, so they share one set (a channel can go only when it is dead
in both). Widths fixed by the architecture (tap counts, occlusion/blend maps, CDFI's feature
pyramid and GridNet) are not in any set.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from torch import nn

from vfikit.errors import VfikitError

HEADS = ("weight1", "offset_y1", "offset_x1", "weight2", "offset_y2", "offset_x2", "occlusion", "blend")


@dataclass
class ChannelSet:
    """One prunable width: ``spec`` entries ``(module, index)`` of the channel spec take this width."""

    name: str
    spec: list[tuple[str, int]]
    producers: list[str]
    consumers: list[str] = field(default_factory=list)


def channel_sets(model: nn.Module) -> list[ChannelSet]:
    """The prunable channel sets of an AdaCoF-family model (module paths as in ``named_modules``)."""
    widths = getattr(model, "model_args", {}).get("channels")
    if not isinstance(widths, dict) or "conv1" not in widths:
        raise VfikitError(f"{type(model).__name__} is not an AdaCoF-family model built from a channel spec")
    heads = [h for h in HEADS if h in widths]
    pyramid = "pyramid" in widths
    sets: list[ChannelSet] = []
    for k in range(1, 6):
        for i in (0, 1):
            sets.append(ChannelSet(f"conv{k}[{i}]", [(f"conv{k}", i)], [f"unet.conv{k}.{2 * i}"],
                                   [f"unet.conv{k}.{2 * i + 2}"]))
        spec = [(f"conv{k}", 2)]
        producers = [f"unet.conv{k}.4"]
        consumers = [f"unet.conv{k + 1}.0" if k < 5 else "unet.deconv5.0"]
        if k >= 2:  # conv_k + upsample_k is one tensor, read by the next decoder block (or the heads)
            spec.append((f"upsample{k}", 0))
            producers.append(f"unet.upsample{k}.1")
            consumers += [f"unet.deconv{k - 1}.0"] if k > 2 else [f"heads.{h}.0" for h in heads]
        if pyramid:
            consumers.append(f"pyramid.{k - 1}")
        sets.append(ChannelSet(f"conv{k}[2]" + (f"+upsample{k}" if k >= 2 else ""), spec, producers, consumers))
    for k in range(5, 1, -1):
        for i in (0, 1, 2):
            consumer = f"unet.deconv{k}.{2 * i + 2}" if i < 2 else f"unet.upsample{k}.1"
            sets.append(ChannelSet(f"deconv{k}[{i}]", [(f"deconv{k}", i)], [f"unet.deconv{k}.{2 * i}"], [consumer]))
    for h in heads:
        for i, (prod, cons) in enumerate(((0, 2), (2, 4), (4, 7))):
            sets.append(ChannelSet(f"{h}[{i}]", [(h, i)], [f"heads.{h}.{prod}"], [f"heads.{h}.{cons}"]))
    modules = dict(model.named_modules())
    for s in sets:
        for path in s.producers + s.consumers:
            if not isinstance(modules.get(path), nn.Conv2d):
                raise VfikitError(f"expected a Conv2d at {path!r} in {type(model).__name__}")
    return sets


def set_width(widths: dict, s: ChannelSet) -> int:
    """The current width of set ``s`` in a channel spec's widths."""
    key, index = s.spec[0]
    return int(widths[key][index])
