"""Config schema, YAML loading, --set overrides, clear errors, and every packaged recipe."""

from __future__ import annotations

import pytest
import yaml

from vfikit.cli import main
from vfikit.config import (
    SequencesDatasetConfig,
    SyntheticDatasetConfig,
    apply_override,
    config_from_dict,
    dump_yaml,
    list_recipes,
    load_config,
    read_raw,
)
from vfikit.errors import VfikitError

pytestmark = pytest.mark.usefixtures("tiny_models")  # the tiny models of tests/_train_models.py


def _raw(**data_overrides) -> dict:
    data = {"train": [{"type": "synthetic", "weight": 1.0}], "crop": 32, "batch_size": 2}
    data.update(data_overrides)
    return {"model": {"arch": "test_tiny_adacof"}, "data": data, "train": {"steps": 2}}


def _write(tmp_path, raw) -> str:
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(raw))
    return str(path)


def test_yaml_loads_with_types_and_defaults(tmp_path):
    raw = _raw()
    raw["optim"] = {"lr": "1e-3"}  # PyYAML reads 1e-3 as a string: accepted for a float field
    cfg = load_config(_write(tmp_path, raw), ["optim.lr=5.0e-4", "data.train.0.weight=0.25", "train.amp=false"])
    assert cfg.optim.lr == 5e-4 and cfg.optim.name == "adamax"
    assert isinstance(cfg.data.train[0], SyntheticDatasetConfig) and cfg.data.train[0].weight == 0.25
    assert cfg.loss == [{"name": "charbonnier", "weight": 1.0}]
    again = config_from_dict(yaml.safe_load(dump_yaml(cfg)))
    assert again == cfg
    assert list(yaml.safe_load(dump_yaml(cfg))["data"]["train"][0])[:2] == ["type", "weight"]


@pytest.mark.parametrize(
    ("mutate", "match"),
    [
        (lambda r: r["train"].update(stepz=3), r"unknown key train\.stepz; did you mean steps"),
        (lambda r: r["optim"].update(lr="fast") if "optim" in r else r.update(optim={"lr": "fast"}),
         r"optim\.lr: expected float, got 'fast'"),
        (lambda r: r["train"].update(steps=2.5), r"train\.steps: expected int, got 2\.5"),
        (lambda r: r["train"].update(amp="yes"), r"train\.amp: expected bool"),
        (lambda r: r["data"]["train"][0].update(objects="many"), r"data\.train\[0\]\.objects: expected a list"),
        (lambda r: r["data"]["train"].append({"type": "vimeo"}),
         r"data\.train\[1\]\.type: unknown dataset type 'vimeo'"),
        (lambda r: r["data"]["train"].append({"type": "vimeo90k"}), r"data\.train\[1\]\.root is not set"),
        (lambda r: r["data"]["train"].append({"type": "vimeo90k", "root": "/nonexistent/vimeo"}),
         r"data\.train\[1\]\.root: dataset root /nonexistent/vimeo does not exist"),
        (lambda r: r["data"]["train"].append({"type": "sequences", "paths": ["/nonexistent/clip.mp4"]}),
         r"data\.train\[1\]\.paths\[0\]: /nonexistent/clip\.mp4 does not exist"),
        (lambda r: r["data"].update(hflip=2), r"data\.hflip is a probability"),
        (lambda r: r["model"].pop("arch"), r"model\.arch is required"),
        (lambda r: r["model"].update(arch="test_tiny_adacoff"), r"model\.arch: unknown model 'test_tiny_adacoff'"),
        (lambda r: r.update(loss=[{"name": "vgg", "weight": 0.1, "weights": "/nonexistent/vgg.pth"}]),
         r"loss\[0\]\.weights: the VGG16 weights file '/nonexistent/vgg\.pth' does not exist"),
        (lambda r: r.update(loss=[{"name": "charbonnier", "eps": "tiny"}]), r"loss\[0\]\.eps: expected float"),
        (lambda r: r.update(loss=[{"name": "charbonnier", "epsilon": 1}]), r"unknown key loss\[0\]\.epsilon"),
        (lambda r: r.update(schedule={"name": "step"}), r"schedule\.step_size must be >= 1"),
    ],
)
def test_bad_configs_name_the_key(mutate, match):
    raw = _raw()
    mutate(raw)
    with pytest.raises(VfikitError, match=match):
        config_from_dict(raw)


def test_overrides_reach_list_entries_and_fail_clearly():
    raw = _raw()
    apply_override(raw, "data.train.0.max_translation=12")
    apply_override(raw, "data.val=[{type: synthetic, seed: 5}]")
    apply_override(raw, "schedule.name=cosine")
    cfg = config_from_dict(raw)
    assert cfg.data.train[0].max_translation == 12.0 and cfg.data.val[0].seed == 5
    assert cfg.schedule.name == "cosine"
    with pytest.raises(VfikitError, match="not an index of a list of 1"):
        apply_override(raw, "data.train.3.weight=1")
    with pytest.raises(VfikitError, match="key=value"):
        apply_override(raw, "optim.lr")


def test_config_file_or_recipe_errors(tmp_path):
    with pytest.raises(VfikitError, match="config file not found"):
        read_raw(tmp_path / "missing.yaml")
    with pytest.raises(VfikitError, match="did you mean offline_cdfi"):
        read_raw("offline_cdf")
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: [unclosed")
    with pytest.raises(VfikitError, match="cannot parse"):
        read_raw(bad)


@pytest.mark.parametrize("name", list_recipes())
def test_every_packaged_recipe_is_valid(name):
    cfg = load_config(name, check_external=False)
    assert cfg.train.steps > 0 and cfg.loss
    if name.startswith(("offline", "vfikit_")):
        # the offline recipes (and those of the shipped weights) need no download: every data source is
        # optional or procedural
        for spec in [*cfg.data.train, *cfg.data.val]:
            assert not getattr(spec, "root", None)
            if isinstance(spec, SequencesDatasetConfig):
                assert spec.optional_paths and not spec.paths
    else:
        # Vimeo recipes refuse to start until the dataset location is given
        with pytest.raises(VfikitError, match=r"data\.train\[0\]\.(root|paths)"):
            load_config(name)


def test_recipes_cover_the_zoo():
    names = set(list_recipes())
    for arch in ("cdfi", "adacof_k5", "adacof_k11", "dsepconv", "edsc_s", "edsc_m"):
        assert f"{arch}_vimeo90k" in names
    assert {"offline_cdfi", "offline_compressed_adacof_k5"} <= names


def test_cli_reports_config_errors_without_traceback(tmp_path, capsys):
    path = _write(tmp_path, _raw())
    assert main(["train", path, "--set", "optim.lr=abc"]) == 2
    err = capsys.readouterr().err
    assert "vfikit train: error: optim.lr: expected float, got 'abc'" in err and "Traceback" not in err
    assert main(["train", path, "--print-config", "--set", "train.steps=7"]) == 0
    assert "steps: 7" in capsys.readouterr().out
    assert main(["train", "--list-recipes"]) == 0
    assert "offline_cdfi" in capsys.readouterr().out


def test_every_dataset_type_checks_itself_knows_its_t_and_has_a_builder():
    from vfikit.config import DATASET_TYPES, Vimeo90kDatasetConfig
    from vfikit.data.factory import BUILDERS, t_values_fixed

    assert set(BUILDERS) == set(DATASET_TYPES)  # a new type needs both
    assert SyntheticDatasetConfig().fixed_t() and not SyntheticDatasetConfig(t=[0.5, 0.25]).fixed_t()
    assert not SyntheticDatasetConfig(t_range=[0.2, 0.8]).fixed_t()
    assert SyntheticDatasetConfig(t_range=[0.5, 0.5]).fixed_t()
    assert SequencesDatasetConfig().fixed_t() and not SequencesDatasetConfig(targets="all").fixed_t()
    assert Vimeo90kDatasetConfig().fixed_t()
    cfg = config_from_dict(_raw(val=[{"type": "synthetic", "t": [0.25, 0.5]}]))
    assert not t_values_fixed(cfg.data)  # any entry, training or validation, decides
    for entry, match in ((Vimeo90kDatasetConfig(holdout=1.5), r"here\.holdout is a fraction in \[0, 1\), got 1.5"),
                         (SequencesDatasetConfig(paths=["x"], part="holdout"), "here: part 'holdout' needs holdout"),
                         (SyntheticDatasetConfig(weight=-1), r"here\.weight must be >= 0")):
        with pytest.raises(VfikitError, match=match):
            entry.check("here", check_external=False)
