"""EDSC (Cheng & Chen, TPAMI 2021): enhanced deformable separable convolution, EDSC_s and EDSC_m.

Network of Xianhang/EDSC-pytorch ``networks/EDSC.py``: the DSepConv network
(``vfikit.models.dsepconv.DSepConv``) with heterogeneous convs (groups 4) in the U-Net, a bias head
added to the output and, for EDSC_m, a time channel (t for the frame-0 heads, 1 - t for the frame-1
heads) so that any t in [0, 1] is a native input.
"""

from __future__ import annotations

from vfikit.errors import VfikitError
from vfikit.models.catalog import WeightSpec, register_model
from vfikit.models.dsepconv import DSepConv

_CITATION = (
    "@article{EDSC, author={Cheng, Xianhang and Chen, Zhenzhong}, journal={IEEE Transactions on Pattern Analysis "
    "and Machine Intelligence}, title={Multiple Video Frame Interpolation via Enhanced Deformable Separable "
    "Convolution}, year={2021}, doi={10.1109/TPAMI.2021.3100714}}"
)
_LICENSE = "not stated (no licence file found in Xianhang/EDSC-pytorch)"
_WHERE = ("the authors publish the .ckpt files only in a Google Drive folder "
          "(https://drive.google.com/drive/folders/1iv4_34clpnjM2af34_qdoEpEzblMMNrW) and on Baidu Cloud "
          "(https://pan.baidu.com/s/1kC7dEN2ZsMS7IdOLXVuDGQ, code bdfu); download it and pass weights=PATH")
_METRICS_NOTE = "paper results not verified here (EDSC, arXiv 2006.08070); none recorded"


class EDSC(DSepConv):
    """EDSC_s (``multiple=False``, midpoint only) or EDSC_m (``multiple=True``, any t in [0, 1])."""

    def __init__(self, *, multiple: bool = False, kernel_size: int = 5, het_groups: int = 4,
                 convention: str = "clean", channel_order: str = "rgb") -> None:
        super().__init__(kernel_size=kernel_size, hetconv=True, het_groups=het_groups, bias_head=True,
                         time_input=multiple, convention=convention, channel_order=channel_order)
        self.model_args = {"multiple": bool(multiple), "kernel_size": kernel_size, "het_groups": het_groups,
                           "convention": self.convention, "channel_order": self.channel_order}


def _edsc(multiple: bool, kwargs: dict) -> EDSC:
    if "multiple" in kwargs and bool(kwargs["multiple"]) != multiple:
        name = "edsc_m" if multiple else "edsc_s"
        raise VfikitError(f"{name} has multiple={multiple}, got multiple={kwargs['multiple']!r}")
    kwargs = {k: v for k, v in kwargs.items() if k != "multiple"}
    return EDSC(multiple=multiple, **kwargs)


@register_model(
    "edsc_s",
    family="edsc",
    params=8_945_189,
    description="EDSC_s (TPAMI 2021): DSepConv with heterogeneous convs and a bias head, midpoint only",
    weights=(
        WeightSpec(tag="official", format="edsc", filename=None, url=None, code_license=_LICENSE,
                   weights_license=_LICENSE, citation=_CITATION,
                   notes=f"EDSC_s_l1.ckpt (distortion-oriented); {_WHERE}; {_METRICS_NOTE}"),
        WeightSpec(tag="official_lf", format="edsc", url=None, code_license=_LICENSE, weights_license=_LICENSE,
                   citation=_CITATION,
                   notes=f"the perceptual ('lf') EDSC_s file (exact name unverified); {_WHERE}; {_METRICS_NOTE}"),
    ),
)
def edsc_s(**kwargs) -> EDSC:
    """EDSC_s (8,945,189 parameters)."""
    return _edsc(False, kwargs)


@register_model(
    "edsc_m",
    family="edsc",
    params=8_950_949,
    description="EDSC_m (TPAMI 2021): EDSC with a time input, interpolates any t in [0, 1]",
    arbitrary_t=True,
    weights=(
        WeightSpec(tag="official", format="edsc", url=None, code_license=_LICENSE, weights_license=_LICENSE,
                   citation=_CITATION, notes=f"EDSC_m.ckpt; {_WHERE}; {_METRICS_NOTE}"),
    ),
)
def edsc_m(**kwargs) -> EDSC:
    """EDSC_m (8,950,949 parameters)."""
    return _edsc(True, kwargs)
