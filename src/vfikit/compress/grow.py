"""CDFI's stage II on top of a compressed AdaCoF: grow the trained network into the ``cdfi`` architecture.

CDFI (CVPR 2021) = a compressed AdaCoF (F=11, D=2) + a feature pyramid warped with the same kernels +
a GridNet synthesis blended with the warp. :func:`grow_to_cdfi` builds a CDFI whose AdaCoF part
computes what a trained clean-convention AdaCoF-family model computes, so stage II training starts
from the compressed model's quality instead of from scratch:

* channel sets (:mod:`vfikit.sparsity.graph`) keep the source channels; where CDFI is wider, the new
  output channels get fresh weights and every consumer reads them with zero weights (no effect);
  where CDFI is narrower (a few sets), the channels of largest norm are kept (not exact there);
* taps: source tap at displacement ``p`` (rows or columns, ``F_s`` taps, dilation ``D_s``) goes to the
  CDFI tap at ``2p`` when it exists, and its offset bias gets ``-p``: the sampled position is the
  same (exact in the clean convention). Unused taps get the weight logit ``unused_tap_logit``
  (default -12: together about 0.06% of the weight next to a logit of 0, small enough to keep the
  function and large enough for their gradients to let training bring them in);
* the blend head starts at ``sigmoid(blend_bias)`` (default about 0.02) with zero last-layer weights, so
  the initial output is 98% the AdaCoF warp; the feature pyramid and GridNet start fresh.
"""

from __future__ import annotations

import torch
from torch import nn

from vfikit.compress.prune import copy_convs, largest_channels
from vfikit.errors import VfikitError
from vfikit.sparsity.graph import channel_sets

TAP_HEADS = ("weight1", "offset_y1", "offset_x1", "weight2", "offset_y2", "offset_x2")


def _tap_map(src_taps: int, src_dil: int, dst_taps: int, dst_dil: int) -> list[tuple[int, int, float]]:
    """Per source tap index along one axis: (destination tap index, position correction in px)."""
    out = []
    for k in range(src_taps):
        p = (k - (src_taps - 1) / 2) * src_dil
        target = 2 * p
        q = target / dst_dil + (dst_taps - 1) / 2
        if q != int(q) or not 0 <= q < dst_taps:
            raise VfikitError(f"cannot place a {src_taps}-tap dilation-{src_dil} kernel into {dst_taps} taps "
                              f"at dilation {dst_dil}")
        out.append((int(q), p - target))
    if len({q for q, _ in out}) != len(out):
        raise VfikitError("two source taps land on one CDFI tap")
    return out


def grow_to_cdfi(source: nn.Module, blend_bias: float = -4.0, unused_tap_logit: float = -12.0,
                 **cdfi_args) -> nn.Module:
    """A ``cdfi`` model initialised from a trained clean-convention AdaCoF-family ``source`` (see above)."""
    from vfikit.hub import create_model

    args = getattr(source, "model_args", {})
    if "channels" not in args or "pyramid" in args["channels"]:
        raise VfikitError(f"grow_to_cdfi needs an AdaCoF or compressed AdaCoF model, got {type(source).__name__}")
    if args.get("convention") != "clean":
        raise VfikitError("grow_to_cdfi maps taps exactly only in the clean convention; train in it")
    target = create_model("cdfi", convention="clean", channel_order=args.get("channel_order", "rgb"), **cdfi_args)
    target = target.to(next(source.parameters()).dtype)  # offset corrections are added in the source's precision
    src_sets = {s.name: s for s in channel_sets(source)}
    dst_sets = {s.name: s for s in channel_sets(target)}
    src_widths, dst_widths = source.model_args["channels"], target.model_args["channels"]
    keep = {}
    for name, s in src_sets.items():
        key, index = s.spec[0]
        keep[name] = largest_channels(source, s, min(src_widths[key][index], dst_widths[key][index]))
    skip = {f"heads.{h}.7" for h in TAP_HEADS}
    copy_convs(source, target, src_sets, dst_sets, keep, skip=skip, fill_new_inputs=0.0)

    taps_s, dil_s = source.kernel_size, source.dilation
    taps_d, dil_d = target.kernel_size, target.dilation
    axis = _tap_map(taps_s, dil_s, taps_d, dil_d)
    src_mod, dst_mod = dict(source.named_modules()), dict(target.named_modules())
    with torch.no_grad():
        for head in TAP_HEADS:
            s_conv, d_conv = src_mod[f"heads.{head}.7"], dst_mod[f"heads.{head}.7"]
            inputs = keep[f"{head}[2]"]
            d_conv.weight.zero_()
            d_conv.bias.fill_(unused_tap_logit if head.startswith("weight") else 0.0)
            for k, (kd, corr_k) in enumerate(axis):
                for l, (ld, corr_l) in enumerate(axis):
                    t_src, t_dst = taps_s * k + l, taps_d * kd + ld
                    d_conv.weight[t_dst, : inputs.numel()] = s_conv.weight[t_src, inputs]
                    bias = s_conv.bias[t_src]
                    if head.startswith("offset_y"):
                        bias = bias + corr_k
                    elif head.startswith("offset_x"):
                        bias = bias + corr_l
                    d_conv.bias[t_dst] = bias
        blend = dst_mod["heads.blend.7"]
        blend.weight.zero_()
        blend.bias.fill_(blend_bias)
    return target.train(source.training)
