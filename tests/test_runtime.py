"""vfikit.runtime: atomic writes, the safe torch.load, device resolution."""

from __future__ import annotations

import pytest
import torch

from vfikit.errors import VfikitError
from vfikit.runtime import atomic_path, resolve_device, torch_load, write_text_atomic


def test_atomic_path_replaces_on_success_and_leaves_the_old_file_on_failure(tmp_path):
    target = tmp_path / "sub" / "out.json"
    write_text_atomic(target, "first")
    assert target.read_text() == "first"
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        assert tmp.suffix == ".json" and tmp.parent == target.parent
        tmp.write_text("half")
        raise RuntimeError("writer failed")
    assert target.read_text() == "first"
    assert sorted(p.name for p in target.parent.iterdir()) == ["out.json"]  # no temporary file left


def test_torch_load_gives_one_line_errors(tmp_path):
    torch.save({"w": torch.ones(2)}, tmp_path / "ok.pt")
    assert torch.equal(torch_load(tmp_path / "ok.pt")["w"], torch.ones(2))
    (tmp_path / "text.pth").write_text("hello")
    with pytest.raises(VfikitError, match="cannot read .* as LPIPS weights: it is not a torch.save file"):
        torch_load(tmp_path / "text.pth", "LPIPS weights")
    with pytest.raises(VfikitError, match="file not found"):
        torch_load(tmp_path / "missing.pt")


def test_resolve_device():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device(None).type in ("cpu", "cuda")
    with pytest.raises(VfikitError, match="unknown device 'tpu0'"):
        resolve_device("tpu0")


def test_check_frame_names_what_is_wrong():
    from vfikit.errors import VfikitTypeError
    from vfikit.runtime import check_frame

    ok = torch.rand(3, 8, 8)
    assert check_frame(ok, "frame 0", dims=(3,)) is ok
    with pytest.raises(VfikitError, match=r"frame0 must have shape \(3, H, W\) or \(B, 3, H, W\), got \(8, 8\)"):
        check_frame(torch.rand(8, 8), "frame0", dims=(3, 4))
    with pytest.raises(VfikitTypeError, match="frame0 must be a floating tensor.*uint8"):
        check_frame(torch.zeros(1, 3, 8, 8, dtype=torch.uint8), "frame0")
    with pytest.raises(VfikitTypeError, match="must be a torch.Tensor, got list"):
        check_frame([1, 2], "frame1")
    with pytest.raises(VfikitError, match="divide by 255"):
        check_frame(ok * 255, "frame1", dims=(3,), range_tolerance=1e-3)


def test_check_int_names_the_argument_and_its_range():
    from vfikit.runtime import check_int

    assert check_int(3, "depth", low=1, high=20) == 3
    for bad, match in ((0, "depth must be an integer from 1 to 20, got 0"), (21, "from 1 to 20, got 21"),
                       (True, "got True"), (2.0, "got 2.0"), ("3", "got '3'")):
        with pytest.raises(VfikitError, match=match):
            check_int(bad, "depth", low=1, high=20)
    with pytest.raises(VfikitError, match="side must be a positive integer, got -1"):
        check_int(-1, "side", low=1)
    with pytest.raises(VfikitError, match="overlap must be a non-negative integer"):
        check_int(-1, "overlap", low=0)
    with pytest.raises(VfikitError, match=r"tile \(None, 'auto' or pixels\) must be an integer >= 64, got 32"):
        from vfikit import Interpolator

        Interpolator("overlay", device="cpu", tile=32)  # a weight-free model


def test_settled_imports_pauses_the_collector_then_freezes_and_restores_it():
    import gc

    from vfikit.runtime import settled_imports

    frozen = gc.get_freeze_count()
    try:
        for enabled in (True, False):
            (gc.enable if enabled else gc.disable)()
            with settled_imports():
                assert not gc.isenabled()  # no collection while the block imports
                made = [[] for _ in range(1000)]
            assert gc.isenabled() == enabled  # as it was
            assert gc.get_freeze_count() >= frozen + len(made)  # what existed is frozen
        gc.enable()
        with pytest.raises(ImportError), settled_imports():
            import vfikit_no_such_module  # noqa: F401
        assert gc.isenabled()  # restored after a failed import too
    finally:
        gc.unfreeze()
        gc.enable()


def test_interpolate_command_settles_its_imports(tmp_path, monkeypatch):
    import contextlib

    import vfikit.commands.interpolate as command
    import vfikit.video.api as api
    from vfikit.cli import main

    seen = []

    @contextlib.contextmanager
    def record():
        seen.append("settle")
        yield

    monkeypatch.setattr(command, "settled_imports", record)
    monkeypatch.setattr(api, "interpolate_video", lambda *a: seen.append("job"))
    assert main(["interpolate", str(tmp_path / "a.mp4"), str(tmp_path / "b.mp4"), "--model", "overlay"]) == 0
    assert seen == ["settle", "job"]
