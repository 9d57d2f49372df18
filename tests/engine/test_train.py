"""The training loop: loss falls, exact resume, DDP == single process, checkpoints, logs, errors."""

from __future__ import annotations

import csv
import socket

import pytest
import torch
import torch.multiprocessing as mp

from tests import _train_models
from vfikit.cli import main
from vfikit.config import config_from_dict
from vfikit.engine.checkpoint import list_checkpoints, load_checkpoint
from vfikit.engine.train import lr_factor, train
from vfikit.errors import VfikitError
from vfikit.hub import load_trained_model

pytestmark = pytest.mark.usefixtures("tiny_models")  # the tiny models of tests/_train_models.py


def _raw(tmp_path, name="run", **train_overrides) -> dict:
    raw = {
        "model": {"arch": "test_tiny_adacof", "args": {"channels": 6}},
        "data": {
            "train": [{"type": "synthetic", "seed": 0, "max_translation": 2.0, "objects": [0, 2]}],
            "val": [{"type": "synthetic", "seed": 77, "max_translation": 2.0, "objects": [0, 2]}],
            "crop": 24, "batch_size": 4, "val_samples": 4, "val_crop": 24,
        },
        "loss": [{"name": "charbonnier", "weight": 1.0}, {"name": "g_spatial", "weight": 0.01},
                 {"name": "g_occlusion", "weight": 0.005}],
        "optim": {"name": "adamax", "lr": 2.0e-3},
        "train": {"steps": 6, "log_every": 1, "val_every": 3, "ckpt_every": 3, "threads": 1,
                  "tensorboard": False, "out_dir": str(tmp_path / name)},
    }
    raw["train"].update(train_overrides)
    return raw


def _quiet(_msg: str) -> None:
    pass


def _same_state(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_smoke_loss_falls_on_synthetic_data(tmp_path):
    raw = _raw(tmp_path, steps=40, log_every=10, val_every=40, ckpt_every=40, tensorboard=True)
    result = train(config_from_dict(raw), log=_quiet)
    losses = [row["loss"] for row in result.history]
    assert len(losses) == 4 and losses[-1] < 0.85 * losses[0], losses
    assert result.step == 40 and result.val_history[-1]["step"] == 40
    out = tmp_path / "run"
    assert (out / "step_000000040.pt").is_file() and (out / "best.pt").is_file()
    assert list((out / "samples").glob("*.png")) and list((out / "tensorboard").iterdir())
    with (out / "train_log.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert [int(r["step"]) for r in rows] == [10, 20, 30, 40]
    assert {"charbonnier", "g_spatial", "g_occlusion", "steps_per_s"} <= set(rows[0])
    state = load_checkpoint(out / "step_000000040.pt")
    assert state["arch"] == "test_tiny_adacof" and state["model_args"] == {"channels": 6} and state["step"] == 40
    assert state["config"]["optim"]["lr"] == 2e-3 and state["rng"]["sampler"]["next_sample"] == 160
    model = load_trained_model(out / "best.pt")
    assert _same_state(model.state_dict(), result.model.state_dict())  # best = last here (single validation)


def test_resume_after_interruption_equals_an_uninterrupted_run(tmp_path):
    straight = train(config_from_dict(_raw(tmp_path, "a")), log=_quiet)
    first = train(config_from_dict(_raw(tmp_path, "b")), stop_at=3, log=_quiet)
    assert first.step == 3 and [s for s, _ in list_checkpoints(tmp_path / "b")] == [3]
    with pytest.raises(VfikitError, match="already holds checkpoints"):
        train(config_from_dict(_raw(tmp_path, "b")), log=_quiet)
    # resume in a "new process": different workers, fresh RNG; the result must not change
    torch.manual_seed(12345)
    raw = _raw(tmp_path, "b")
    raw["data"]["num_workers"] = 1
    second = train(config_from_dict(raw), resume="auto", log=_quiet)
    assert second.step == 6
    assert _same_state(straight.model.state_dict(), second.model.state_dict())
    a, b = load_checkpoint(tmp_path / "a" / "step_000000006.pt"), load_checkpoint(tmp_path / "b" / "step_000000006.pt")
    assert a["optimizer"]["state"].keys() == b["optimizer"]["state"].keys()
    for k in a["optimizer"]["state"]:
        assert all(torch.equal(a["optimizer"]["state"][k][n], b["optimizer"]["state"][k][n])
                   for n in a["optimizer"]["state"][k])
    assert a["scheduler"]["last_epoch"] == b["scheduler"]["last_epoch"] == 6
    with (tmp_path / "b" / "train_log.csv").open() as fh:
        assert [int(r["step"]) for r in csv.DictReader(fh)] == [1, 2, 3, 4, 5, 6]


def test_weight_average_is_the_ema_of_the_steps_and_resumes_exactly(tmp_path):
    raw = _raw(tmp_path, "ema", steps=3, ckpt_every=1, keep_last=5, val_every=3, ema_decay=0.25)
    result = train(config_from_dict(raw), log=_quiet)
    w = [load_checkpoint(tmp_path / "ema" / f"step_{k:09d}.pt")["model"] for k in (1, 2, 3)]
    want = {k: 0.25 * (0.25 * w[0][k] + 0.75 * w[1][k]) + 0.75 * w[2][k] for k in w[0]}  # first update copies
    averaged = load_trained_model(tmp_path / "ema" / "step_000000003.pt").state_dict()
    assert all(torch.allclose(averaged[k], want[k], atol=1e-7) for k in want)
    assert not _same_state(averaged, result.model.state_dict())
    assert _same_state(load_trained_model(tmp_path / "ema" / "best.pt").state_dict(), averaged)  # validated = average
    # an interrupted run resumes its average too
    train(config_from_dict(_raw(tmp_path, "ema2", steps=3, ckpt_every=1, keep_last=5, val_every=3, ema_decay=0.25)),
          stop_at=2, log=_quiet)
    train(config_from_dict(_raw(tmp_path, "ema2", steps=3, ckpt_every=1, keep_last=5, val_every=3, ema_decay=0.25)),
          resume="auto", log=_quiet)
    assert _same_state(load_trained_model(tmp_path / "ema2" / "step_000000003.pt").state_dict(), averaged)


def test_resume_refuses_another_model(tmp_path):
    train(config_from_dict(_raw(tmp_path, steps=2, ckpt_every=2, val_every=2)), log=_quiet)
    raw = _raw(tmp_path, steps=4)
    raw["model"]["args"] = {"channels": 8}
    with pytest.raises(VfikitError, match="cannot resume"):
        train(config_from_dict(raw), resume="auto", log=_quiet)
    with pytest.raises(VfikitError, match="checkpoint not found"):
        train(config_from_dict(raw), resume=tmp_path / "nope.pt", log=_quiet)


def test_keep_last_and_time_limit(tmp_path):
    result = train(config_from_dict(_raw(tmp_path, steps=4, ckpt_every=1, keep_last=2)), log=_quiet)
    assert [s for s, _ in list_checkpoints(tmp_path / "run")] == [3, 4] and result.step == 4
    stopped = train(config_from_dict(_raw(tmp_path, "t", steps=50, time_limit=0.0)), log=_quiet)
    assert stopped.stopped_early and stopped.step == 1
    assert [s for s, _ in list_checkpoints(tmp_path / "t")] == [1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_process_ddp_matches_one_process_with_the_same_global_batch(tmp_path):
    raw = _raw(tmp_path, "single", steps=3, ckpt_every=3, val_every=3)
    raw["loss"].append({"name": "temporal_flip", "weight": 0.5})  # aux + doubled batch through DDP
    single = train(config_from_dict(raw), log=_quiet)
    ddp_raw = _raw(tmp_path, "ddp", steps=3, ckpt_every=3, val_every=3)
    ddp_raw["loss"] = raw["loss"]
    out = tmp_path / "ddp_weights.pt"
    mp.spawn(_train_models.ddp_worker, args=(2, _free_port(), ddp_raw, str(out)), nprocs=2, join=True)
    ddp = torch.load(out, weights_only=True)
    assert ddp["step"] == 3
    ref = single.model.state_dict()
    for k, v in ddp["model"].items():
        torch.testing.assert_close(v, ref[k], rtol=1e-4, atol=1e-5, msg=lambda m, k=k: f"{k}: {m}")
    # and the DDP run really trained (weights moved away from the initialisation)
    torch.manual_seed(0)  # train() seeds with train.seed + rank = 0 before building the model
    init = _train_models.TinyAdaCoF(channels=6).state_dict()
    assert any(not torch.allclose(ddp["model"][k], init[k]) for k in init)
    assert [s for s, _ in list_checkpoints(tmp_path / "ddp")] == [3]


def test_arbitrary_t_training_and_fixed_t_refusal(tmp_path):
    raw = _raw(tmp_path, steps=2, ckpt_every=2, val_every=2)
    raw["data"]["train"][0]["t_range"] = [0.1, 0.9]
    with pytest.raises(VfikitError, match=r"only interpolates t = 0\.5"):
        train(config_from_dict(raw), log=_quiet)
    raw["model"] = {"arch": "test_tiny_arbitrary", "args": {"channels": 4}}
    raw["loss"] = [{"name": "charbonnier", "weight": 1.0}, {"name": "temporal_flip", "weight": 1.0}]
    result = train(config_from_dict(raw), log=_quiet)
    assert result.step == 2


def test_amp_on_cpu_needs_bfloat16_and_trains_with_it(tmp_path):
    with pytest.raises(VfikitError, match="bfloat16"):
        train(config_from_dict(_raw(tmp_path, amp=True)), log=_quiet)
    result = train(config_from_dict(_raw(tmp_path, "bf16", amp=True, amp_dtype="bfloat16", steps=2, ckpt_every=2,
                                         val_every=2)), log=_quiet)
    assert result.step == 2 and all(torch.isfinite(torch.tensor(r["loss"])) for r in result.history)
    assert all(p.dtype == torch.float32 for p in result.model.parameters())


def test_lr_schedules():
    from vfikit.config import ScheduleConfig

    step = ScheduleConfig(name="step", step_size=10, gamma=0.5)
    assert [lr_factor(s, step, 100, 1.0) for s in (0, 9, 10, 25)] == [1.0, 1.0, 0.5, 0.25]
    cos = ScheduleConfig(name="cosine", warmup_steps=4, min_lr=0.1)
    assert [lr_factor(s, cos, 104, 1.0) for s in (0, 3)] == [0.25, 1.0]
    assert lr_factor(54, cos, 104, 1.0) == pytest.approx(0.55)
    assert lr_factor(104, cos, 104, 1.0) == pytest.approx(0.1)


def test_cli_train_runs_and_resumes(tmp_path, capsys):
    import yaml

    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(_raw(tmp_path, steps=2, ckpt_every=2, val_every=2, log_every=1)))
    assert main(["train", str(path), "--stop-at", "1"]) == 0
    out = capsys.readouterr().out
    assert "step 1/2 | loss" in out and "steps/s" in out and "ETA" in out
    assert main(["train", str(path)]) == 2  # would overwrite: refused
    assert "--resume auto" in capsys.readouterr().err
    assert main(["train", str(path), "--resume", "auto"]) == 0
    assert "resumed from" in capsys.readouterr().out
    assert [s for s, _ in list_checkpoints(tmp_path / "run")] == [1, 2]


@pytest.mark.parametrize(
    ("arch", "loss", "synthetic"),
    [
        ("compressed_adacof_k5_d1", ["charbonnier", "g_spatial", "g_occlusion"], {}),
        ("cdfi", ["charbonnier", "g_spatial"], {}),
        ("edsc_m", ["charbonnier", "temporal_flip", "gradient_difference"], {"t_range": [0.2, 0.8]}),
    ],
)
def test_zoo_models_train_and_reload(tmp_path, monkeypatch, arch, loss, synthetic):
    monkeypatch.setenv("VFIKIT_OPS_BACKEND", "torch")  # see tests/_train_models.py on numba's busy-waiting
    raw = _raw(tmp_path, steps=2, ckpt_every=2, val_every=2, log_every=1)
    raw["model"] = {"arch": arch, "args": {}}
    raw["loss"] = [{"name": n, "weight": 1.0} for n in loss]
    raw["data"].update(crop=32, val_crop=32, batch_size=2, val_samples=2)
    raw["data"]["train"][0].update(synthetic)
    torch.manual_seed(0)
    result = train(config_from_dict(raw), log=_quiet)
    assert result.step == 2 and all(torch.isfinite(torch.tensor(r["loss"])) for r in result.history)
    assert set(loss) <= set(result.history[0])
    reloaded = load_trained_model(tmp_path / "run" / "step_000000002.pt")
    assert _same_state(reloaded.state_dict(), result.model.state_dict())
    frames = torch.rand(2, 1, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    model = result.model.eval().to(memory_format=torch.contiguous_format)  # trained channels_last
    with torch.no_grad():
        torch.testing.assert_close(reloaded(frames[0], frames[1]), model(frames[0], frames[1]))


def test_zero_heads_start_from_a_blur_that_still_learns():
    from vfikit.engine.train import build_model

    raw = {"model": {"arch": "compressed_adacof_k5_d1", "zero_heads": True}, "data": {"train": [{"type": "synthetic"}]}}
    model = build_model(config_from_dict(raw, check_external=False))
    torch.manual_seed(0)
    f0, f1 = torch.rand(1, 3, 32, 32), torch.rand(1, 3, 32, 32)
    out, aux = model(f0, f1, return_aux=True)
    (w0, oy0, ox0), (w1, oy1, ox1) = aux["kernels"]
    assert torch.allclose(w0, torch.full_like(w0, 1 / 25)) and torch.allclose(w1, torch.full_like(w1, 1 / 25))
    assert max(t.abs().max() for t in (oy0, ox0, oy1, ox1)) == 0
    assert torch.allclose(aux["occlusion"], torch.full_like(aux["occlusion"], 0.5))
    # interior pixel: the 5x5 box mean of both frames, averaged
    expected = 0.5 * (f0[0, :, 8:13, 8:13].mean((1, 2)) + f1[0, :, 8:13, 8:13].mean((1, 2)))
    assert torch.allclose(out[0, :, 10, 10], expected, atol=1e-5)
    (out - f0).abs().mean().backward()
    last = [m for m in model.heads["offset_x1"].modules() if isinstance(m, torch.nn.Conv2d)][-1]
    assert last.weight.grad.abs().sum() > 0  # zeroed heads still receive gradients

    with pytest.raises(VfikitError, match="AdaCoF family"):
        build_model(config_from_dict({"model": {"arch": "sepconv", "zero_heads": True},
                                      "data": {"train": [{"type": "synthetic"}]}}, check_external=False))


def test_a_model_started_from_other_widths_reloads_from_its_checkpoints(tmp_path):
    """`model.init` may hold a network of other widths than the registry's (a compacted or grown model):
    best.pt and step_*.pt must record the widths the model has, or they cannot be reloaded."""
    from vfikit.hub import create_model
    from vfikit.models.guided import GUIDED_WIDTHS

    narrow = {k: [max(2, w // 4) for w in v] for k, v in GUIDED_WIDTHS.items()}
    start = create_model("guided_adacof_k5", channels=narrow)
    args = {k: v for k, v in start.model_args.items() if k not in ("convention", "channel_order")}
    init = tmp_path / "narrow.pt"
    torch.save({"model": start.state_dict(), "arch": "guided_adacof_k5", "model_args": args}, init)
    raw = _raw(tmp_path, steps=2, val_every=2, ckpt_every=2)
    raw["model"] = {"arch": "guided_adacof_k5", "args": {}, "init": str(init)}
    raw["loss"] = [{"name": "charbonnier", "weight": 1.0}]
    raw["data"].update(crop=32, val_crop=32)
    result = train(config_from_dict(raw), log=_quiet)
    assert result.step == 2
    out = tmp_path / "run"
    for name in ("best.pt", "step_000000002.pt"):
        model = load_trained_model(out / name)  # failed before: the default widths did not fit
        assert model.model_args["channels"] == narrow
    state = load_checkpoint(out / "step_000000002.pt")
    assert state["config_args"] == {} and state["model_args"]["channels"] == narrow
    raw["train"]["steps"] = 3  # and the run resumes: the config's args still match
    assert train(config_from_dict(raw), resume="auto", log=_quiet).step == 3


def test_a_diverging_run_stops_clearly_and_never_saves_a_nan_model(tmp_path):
    """Issue 25 defect 4: optim.lr=1e12 logged "PSNR nan dB (best)", saved the diverged model as best.pt and
    exited 0."""
    raw = _raw(tmp_path, steps=6)
    raw["optim"]["lr"] = 1e12
    lines = []
    with pytest.raises(VfikitError, match=r"training diverged at step \d+: the loss is not finite"):
        train(config_from_dict(raw), log=lines.append)
    assert not any("nan dB" in line for line in lines), lines
    out = tmp_path / "run"
    if (out / "best.pt").exists():
        state = load_trained_model(out / "best.pt").state_dict()
        assert all(torch.isfinite(v).all() for v in state.values())
    for _, path in list_checkpoints(out):
        assert all(torch.isfinite(v).all() for v in load_checkpoint(path)["model"].values())


def test_the_cli_exits_2_on_divergence(tmp_path, capsys):
    import yaml

    raw = _raw(tmp_path, steps=3)
    raw["optim"]["lr"] = 1e12
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump(raw))
    assert main(["train", str(config)]) == 2
    assert "diverged" in capsys.readouterr().err


def test_resume_refuses_a_checkpoint_holding_nan(tmp_path):
    """Issue 25 defect 4: a checkpoint whose optimizer state holds NaN was resumed from."""
    train(config_from_dict(_raw(tmp_path, steps=2, ckpt_every=2, val_every=2)), log=_quiet)
    path = tmp_path / "run" / "step_000000002.pt"
    state = torch.load(path, weights_only=True)
    first = next(iter(state["optimizer"]["state"].values()))
    first["exp_avg"].fill_(float("nan"))
    torch.save(state, path)
    with pytest.raises(VfikitError, match=r"cannot resume .*step_000000002.pt: its optimizer state holds "
                                          r"non-finite values"):
        train(config_from_dict(_raw(tmp_path, steps=4)), resume="auto", log=_quiet)


def test_resume_mismatch_names_what_differs(tmp_path):
    """Issue 25: the resume-mismatch message printed both whole argument dicts; what differs got lost."""
    train(config_from_dict(_raw(tmp_path, steps=2, ckpt_every=2, val_every=2)), log=_quiet)
    raw = _raw(tmp_path, steps=4)
    raw["model"]["args"] = {"channels": 8, "kernel_size": 3}
    with pytest.raises(VfikitError, match=r"model.args.channels: 6 in the checkpoint, 8 in the config; "
                                          r"model.args.kernel_size: unset in the checkpoint, 3 in the config") as info:
        train(config_from_dict(raw), resume="auto", log=_quiet)
    assert "\n" not in str(info.value)


def test_resume_on_another_validation_set_is_refused_and_the_set_is_recorded(tmp_path):
    """Issue 23: a recipe's optional clips change its validation set; a best PSNR from another set must not be
    compared with this one's."""
    from vfikit.engine.checkpoint import latest_checkpoint, load_checkpoint

    lines: list[str] = []
    train(config_from_dict(_raw(tmp_path, steps=2, ckpt_every=2, val_every=2)), log=lines.append)
    state = load_checkpoint(latest_checkpoint(tmp_path / "run"))
    assert state["val_set"] and any(f"validation set {state['val_set']} (4 samples)" in line for line in lines)
    train(config_from_dict(_raw(tmp_path, steps=4, ckpt_every=2, val_every=2)), resume="auto", log=_quiet)  # same set
    other = _raw(tmp_path, steps=6, ckpt_every=2, val_every=2)
    other["data"]["val_samples"] = 3  # as when a machine lacks some of the recipe's clips
    with pytest.raises(VfikitError, match="validation set differs from the resumed run's"):
        train(config_from_dict(other), resume="auto", log=_quiet)


def test_tensorboard_logs_without_tensorboard_ask_for_the_train_extra(tmp_path, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # as in an install without [train]
    with pytest.raises(VfikitError, match=r"pip install 'vfikit\[train\]'"):
        train(config_from_dict(_raw(tmp_path, steps=1, tensorboard=True)), log=_quiet)
    train(config_from_dict(_raw(tmp_path, "off", steps=1)), log=_quiet)  # tensorboard: false needs none


def test_two_process_ddp_stops_together_when_the_run_diverges(tmp_path):
    """The finiteness check is a collective under DDP: every rank must make it at the same steps, also at a
    validation step that is no log or checkpoint step (only rank 0 validates). A rank that skipped it would
    leave the other waiting."""
    raw = _raw(tmp_path, "ddp", steps=4, log_every=4, ckpt_every=4, val_every=2)
    raw["optim"]["lr"] = 1e12
    ctx = mp.spawn(_train_models.ddp_worker, args=(2, _free_port(), raw, str(tmp_path / "w.pt")), nprocs=2,
                   join=False)
    try:
        for _ in range(60):  # seconds
            if ctx.join(timeout=1):
                pytest.fail("the diverged DDP run ended without an error")
    except mp.ProcessRaisedException as exc:
        assert "training diverged at step 2" in str(exc)
    else:
        for process in ctx.processes:
            process.kill()
        pytest.fail("the ranks did not stop together within 60 s")


def _motion_only_raw(tmp_path, arch: str = "guided_adacof_k5", args: dict | None = None) -> dict:
    raw = _raw(tmp_path, steps=3, log_every=1, val_every=100, ckpt_every=100)
    raw["model"] = {"arch": arch, "args": {"motion": {}} if args is None else args, "train_only": ["motion"]}
    raw["data"]["train"][0].update(exact_motion=True, max_translation=4.0)
    raw["data"].update(crop=64, val=[], val_samples=0)
    raw["loss"] = [{"name": "motion", "weight": 1.0}]
    raw["optim"] = {"name": "adam", "lr": 1.0e-3}
    return raw


def test_motion_terms_alone_train_the_estimator_without_running_the_kernel_network(tmp_path, monkeypatch):
    """Issue 23's motion-only stage: a loss of motion terms alone runs the model's motion_fields, so a step costs
    the guide and the refiner, not the synthesis; the refiner learns, the frozen network stays as it was."""
    from vfikit.models.guided import _GuidedBase

    def no_network(*_args, **_kwargs):
        raise AssertionError("the kernel network ran in a motion-only step")

    monkeypatch.setattr(_GuidedBase, "_trunk_outputs", no_network)
    result = train(config_from_dict(_motion_only_raw(tmp_path)), log=_quiet)
    state = result.model.state_dict()
    assert any(float(state[f"motion.blocks.{i}.out.weight"].abs().max()) > 0 for i in range(3))  # left its zero start
    assert [row["step"] for row in result.history] == [1, 2, 3] and all(row["motion"] > 0 for row in result.history)


def test_motion_terms_alone_on_a_model_without_motion_at_t_are_refused(tmp_path):
    raw = _motion_only_raw(tmp_path, arch="test_tiny_adacof", args={"channels": 6})
    raw["model"].pop("train_only")
    with pytest.raises(VfikitError, match="cannot skip its frame"):
        train(config_from_dict(raw), log=_quiet)
