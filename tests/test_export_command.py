"""`vfikit export`: --weights, and clear one-line errors for output paths (issue 25's smaller items)."""

from __future__ import annotations

import pytest

from vfikit.cli import main
from vfikit.runtime import packaged_weights

pytest.importorskip("onnx", reason='ONNX export needs the onnx package: pip install "vfikit[onnx]"')


def test_export_takes_a_weights_file(tmp_path, capsys):
    out = tmp_path / "net.onnx"
    weights = packaged_weights("guided_adacof_k5_fast.vfikit")
    assert main(["export", "guided_adacof_k5_fast", str(out), "--weights", str(weights)]) == 0
    assert out.stat().st_size > 100_000 and "guided_adacof_k5_fast" in capsys.readouterr().out
    assert main(["export", "guided_adacof_k5_fast", str(tmp_path / "x.onnx"), "--weights", str(tmp_path / "no")]) == 2
    assert "weights file not found" in capsys.readouterr().err


@pytest.mark.parametrize("force", [(), ("--force",)])
def test_export_onto_a_folder_or_under_a_file_says_so(tmp_path, capsys, force):
    folder = tmp_path / "models"
    folder.mkdir()
    assert main(["export", "guided_adacof_k5.vfikit", str(folder), *force]) == 2
    err = capsys.readouterr().err
    assert "is a folder" in err and "Errno" not in err and len(err.strip().splitlines()) == 1
    (tmp_path / "file").write_text("x")
    assert main(["export", "guided_adacof_k5.vfikit", str(tmp_path / "file" / "net.onnx"), *force]) == 2
    err = capsys.readouterr().err
    assert "not a folder" in err and "Errno" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file", "models"] and not list(folder.iterdir())
