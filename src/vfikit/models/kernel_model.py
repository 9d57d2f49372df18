"""What every kernel-based network here shares: its build arguments, convention and official key map."""

from __future__ import annotations

from typing import Any, ClassVar

from vfikit.models.base import VFIModel
from vfikit.models.blocks import CHANNEL_ORDERS, CONVENTIONS, KeyMap, check_choice


class KernelVFIModel(VFIModel):
    """Base of SepConv, DSepConv/EDSC, AdaCoF and CDFI.

    Subclasses set ``official_format`` (checkpoint layout of the authors' files, a name understood by
    ``vfikit.models.convert``), ``official_channel_order`` and ``_official_keys`` (our state-dict key
    -> official key). ``model_args`` holds every argument needed to rebuild the model (it is what
    our checkpoints store), including ``convention`` and ``channel_order``.
    """

    official_format: ClassVar[str] = ""
    official_channel_order: ClassVar[str] = "rgb"
    _official_keys: ClassVar[KeyMap]

    def __init__(self, *, convention: str, channel_order: str) -> None:
        super().__init__()
        self.convention = check_choice("convention", convention, CONVENTIONS)
        self.channel_order = check_choice("channel_order", channel_order, CHANNEL_ORDERS)
        self.model_args: dict[str, Any] = {"convention": self.convention, "channel_order": self.channel_order}

    @classmethod
    def official_key(cls, key: str) -> str:
        """The official checkpoint's name of our state-dict entry ``key``."""
        return cls._official_keys(key)

    def official_manifest(self) -> list[tuple[str, tuple[int, ...]]]:
        """Ordered ``(official key, shape)`` list a checkpoint in the official format must hold."""
        return [(self.official_key(k), tuple(v.shape)) for k, v in self.state_dict().items()]

    def extra_repr(self) -> str:
        return f"convention={self.convention!r}, channel_order={self.channel_order!r}"
