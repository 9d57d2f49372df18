"""``vfikit models`` through the in-process CLI."""

from __future__ import annotations

import json

from vfikit.cli import main
from vfikit.models.catalog import get_entry, list_models

EXPECTED = {name: get_entry(name).params for name in list_models() if get_entry(name).params is not None}


def test_models_table_lists_every_architecture(capsys):
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    lines = {line.split()[0]: line for line in out.splitlines()[2:]}
    for name, params in EXPECTED.items():
        assert f"{params:,}" in lines[name]
    assert " yes " in lines["edsc_m"] and " no " in lines["edsc_s"]
    assert "official_lf" in lines["sepconv"]


def test_models_json_has_weights_metadata(capsys):
    assert main(["models", "cdfi", "sepconv", "--json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert set(rows) == {"cdfi", "sepconv"}
    assert rows["cdfi"]["params"] == EXPECTED["cdfi"]
    official = rows["cdfi"]["weights"]["official"]
    assert official["url"].endswith("CDFI_adacof.pth") and "CVPR" in official["citation"]
    assert official["reported_metrics"]["middlebury_other"]["psnr"] == 37.14
    assert rows["sepconv"]["weights"]["official"]["url"].endswith("network-l1.pytorch")


def test_unknown_model_is_a_usage_error(capsys):
    assert main(["models", "cdfx"]) == 2
    assert "did you mean cdfi" in capsys.readouterr().err
