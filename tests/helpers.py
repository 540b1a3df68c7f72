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
