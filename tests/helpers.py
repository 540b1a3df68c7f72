"""Small configs shared by the tests: digits, tiny models, few epochs."""

from kdstudio.core.config import Config


def tiny_config(**overrides) -> Config:
    """A digits run that finishes in a few seconds on a CPU."""
    cfg = Config()
    cfg.teacher.arch, cfg.teacher.width, cfg.teacher.depth, cfg.teacher.epochs = "cnn", 8, 2, 2
    cfg.student.arch, cfg.student.width, cfg.student.depth = "mlp", 16, 1
    cfg.distill.epochs = 2
    cfg.distill.log_every = 5
    for key, value in overrides.items():
        cfg.set(key.replace("__", "."), value)
    return cfg


def assert_stop_mid_epoch_then_resume_equals_uninterrupted(cfg, root, full_dir=None, max_step=None) -> None:
    """Run `cfg` once uninterrupted (into `full_dir`, default root/full, unless it already ran there), once stopped
    inside distill's second epoch and resumed (root/part); the distilled weights must be bit-identical."""
    import torch
    from kdstudio.core import events
    from kdstudio.core.pipeline import engine
    full_dir = full_dir or root / "full"
    if not (full_dir / "checkpoints" / "distill.pt").is_file():
        engine.run(cfg, full_dir)
    full = torch.load(full_dir / "checkpoints" / "distill.pt", weights_only=False)
    control = events.RunControl()

    def stop_mid_epoch(e):
        if e.stage == "distill" and e.kind == events.STEP and e.data["epoch"] == 2 and e.data["step"] >= 2:
            control.stop()
    assert engine.run(cfg, root / "part", on_event=stop_mid_epoch, control=control)["status"] == "stopped"
    saved = torch.load(root / "part" / "checkpoints" / "distill.pt", weights_only=False)
    assert saved["epoch"] == 1 and saved["step_in_epoch"] > 0  # stopped inside the second epoch
    if max_step is not None:
        assert saved["step_in_epoch"] < max_step
    assert engine.run(None, root / "part", resume=True)["status"] == "completed"
    final = torch.load(root / "part" / "checkpoints" / "distill.pt", weights_only=False)
    for k in full["model"]:
        assert torch.equal(full["model"][k], final["model"][k]), k
