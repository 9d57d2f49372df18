"""tools/ship_weights.py --refresh: new measurements go into a shipped file's card, the tensors stay."""

import importlib.util
import json
from pathlib import Path

import pytest
import torch

from vfikit.hub import create_model, read_vfikit_header, save_vfikit

TOOL = Path(__file__).resolve().parents[1] / "tools" / "ship_weights.py"


def _tool():
    spec = importlib.util.spec_from_file_location("ship_weights", TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_refresh_records_measurements_in_both_cards_and_keeps_the_tensors(tmp_path, capsys):
    tool = _tool()
    model = create_model("edsc_m")
    weights = save_vfikit(model, tmp_path / "edsc_m.vfikit", card={"arch": "edsc_m", "notes": ["old"]},
                          dtype=torch.float16)
    (tmp_path / "edsc_m.card.json").write_text(json.dumps({"arch": "edsc_m", "notes": ["old"]}))
    tensors = weights.read_bytes()[-1000:]
    measured = tmp_path / "measured.json"
    measured.write_text(json.dumps({"validation": {"real": 34.5}}))
    assert tool.main(["--refresh", str(weights), "--measured", str(measured), "--note", "new"]) == 0
    card = json.loads((tmp_path / "edsc_m.card.json").read_text())
    assert card == {"arch": "edsc_m", "notes": ["old", "new"], "current": {"validation": {"real": 34.5}}}
    assert read_vfikit_header(weights)["card"] == card
    assert weights.read_bytes()[-1000:] == tensors
    measured.write_text("[1, 2]")
    with pytest.raises(Exception, match="JSON object"):
        tool.main(["--refresh", str(weights), "--measured", str(measured)])
    with pytest.raises(SystemExit):
        tool.main(["--refresh", str(weights)])  # --measured is required
    assert read_vfikit_header(weights)["card"] == card
