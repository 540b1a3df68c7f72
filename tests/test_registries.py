"""Contracts of the registries: validation is torch-free and import-order free; catalogue and classes agree."""

import importlib
import inspect
import json
import math
import os
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

from kdstudio.core import config, losses, models
from kdstudio.core.config.methods import METHODS, param_problem
from kdstudio.core.config.schema import SOURCES
from kdstudio.core.errors import ConfigError
from kdstudio.core.registry import Registry
from tests.helpers import tiny_config

ROOT = Path(__file__).resolve().parents[1]

FRESH = r"""
import json, sys
from kdstudio.core import config

def problems(**changes):
    cfg = config.Config()
    for key, value in changes.items():
        cfg.set(key.replace("__", "."), value)
    return config.problems(cfg)

found = {
    "method": problems(distill__method="kdd"),
    "param": problems(distill__method="dkd", distill__params={"betta": 2.0}),
    "value": problems(distill__method="dkd", distill__params={"beta": -1.0}),
    "feature": problems(distill__feature_method="fitnett"),
    "sweep": problems(run__sweep={"distill.nonexistent": [1, 2]}),
}
print(json.dumps({"found": found, "torch": "torch" in sys.modules}))
"""


def test_fresh_interpreter_outlines_every_method_and_sweep_problem_without_torch():
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    done = subprocess.run([sys.executable, "-c", FRESH], cwd=ROOT, env=env, capture_output=True, text=True,
                          check=True)
    out = json.loads(done.stdout)
    found = {k: [tuple(p) for p in v] for k, v in out["found"].items()}
    assert found["method"] == [("distill.method", "Unknown distillation method 'kdd'. Did you mean 'kd'?")]
    [(key, msg)] = found["param"]
    assert key == "distill.params" and "no parameter 'betta' (did you mean 'beta'?)" in msg
    assert found["value"] == [("distill.params", "'beta' must be a number of at least 0, not -1.0.")]
    assert found["feature"] == [("distill.feature_method", "Unknown feature method 'fitnett'. Did you mean "
                                                           "'fitnet'?")]
    [(key, msg)] = found["sweep"]
    assert key == "run.sweep" and "Unknown setting 'distill.nonexistent'" in msg
    assert out["torch"] is False


WINDOW = r"""
import json, os, re, sys
from PySide6.QtCore import Qt
from PySide6.QtTest import QTest
from kdstudio.gui.app import make_app
from kdstudio.gui.main_window import MainWindow
app = make_app(); w = MainWindow(); w.open_initial(); w.show(); app.processEvents()
text = re.sub(r"^sweep = .*$", 'sweep = { "distill.nonexistent" = [1, 2] }', w.toml.editor.toPlainText(), flags=re.M)
w.toml.editor.setPlainText(text)
QTest.mouseClick(w.toml.apply_btn, Qt.LeftButton)
app.processEvents()
print(json.dumps({"start": w.train.start_act.isEnabled(), "sweep": w.model.problem_map().get("run.sweep", ""),
                  "saved": w.model.cfg.run.sweep}), flush=True)
os._exit(0)  # a catalogue load may still be importing torch in the background: nothing to wait for
"""


def test_window_outlines_a_bad_sweep_and_keeps_start_disabled_in_a_fresh_process():
    pytest.importorskip("PySide6")
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
           "QT_QPA_PLATFORM": "offscreen"}
    done = subprocess.run([sys.executable, "-c", WINDOW], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["saved"] == {"distill.nonexistent": [1, 2]}
    assert "Unknown setting 'distill.nonexistent'" in out["sweep"] and out["start"] is False


# ---- the method catalogue and the loss classes ---------------------------------------------------------------

def _class_params(cls) -> dict:
    sig = inspect.signature(cls.__init__)
    return {p.name: p.default for p in list(sig.parameters.values())[1:] if p.default is not inspect.Parameter.empty}


@pytest.mark.parametrize("name", list(METHODS))
def test_catalogue_entry_agrees_with_its_class(name):
    cls, meta = METHODS.get(name), METHODS.meta(name)
    assert meta["kind"] == cls.kind and meta["min_batch"] == cls.min_batch
    assert meta["params"] == _class_params(cls)
    assert all(type(meta["params"][p]) is type(d) for p, d in _class_params(cls).items())
    assert meta["doc"] == inspect.getdoc(cls).splitlines()[0]
    assert losses.available()[name] == {"params": meta["params"], "doc": meta["doc"], "kind": meta["kind"]}


PROBES = [-1, 0, 0.5, 1, 1.5, 25, float("nan"), float("inf"), "2", "x", None, [1]]


@pytest.mark.parametrize("name", list(METHODS))
def test_catalogue_refuses_exactly_the_values_its_class_refuses(name):
    for p in METHODS.meta(name)["params"]:
        for value in PROBES:
            try:
                METHODS.get(name)(**{p: value})
                class_ok = True
            except (ConfigError, TypeError, ValueError):
                class_ok = False
            assert (param_problem(name, {p: value}) is None) == class_ok, (name, p, value)


def test_every_loss_class_is_in_the_catalogue():
    from kdstudio.core.losses.base import FeatureMethod, LogitMethod
    modules = [importlib.import_module(f"kdstudio.core.losses.{m.name}") for m in pkgutil.iter_modules(losses.__path__)]
    classes = {c for m in modules for _, c in inspect.getmembers(m, inspect.isclass)
               if issubclass(c, (LogitMethod, FeatureMethod)) and c not in (LogitMethod, FeatureMethod)}
    assert classes == {METHODS.get(n) for n in METHODS}
    assert set(losses.REGISTRY) == set(METHODS) and losses.REGISTRY.get("nope") is None


def test_create_and_config_share_the_unknown_parameter_sentence():
    with pytest.raises(ConfigError) as e:
        losses.create("dkd", betta=2.0)
    cfg = config.Config()
    cfg.distill.method, cfg.distill.params = "dkd", {"betta": 2.0}
    assert config.problems(cfg) == [("distill.params", str(e.value))]


# ---- data sources --------------------------------------------------------------------------------------------

def test_every_data_source_resolves_to_a_loader_and_is_a_schema_choice():
    assert all(callable(SOURCES.get(n)) for n in SOURCES)
    assert config.field_info("data.source").metadata["choices"] == tuple(SOURCES)


def test_unknown_data_source_names_the_nearest():
    from kdstudio.core.data import load_data
    cfg = tiny_config()
    cfg.data.source = "cvs"
    with pytest.raises(ConfigError, match="Unknown data source 'cvs'. Did you mean 'csv'?") as e:
        load_data(cfg)
    assert e.value.key == "data.source"
    assert "Did you mean 'csv'" in dict(config.problems(cfg))["data.source"]


# ---- architectures -------------------------------------------------------------------------------------------

def test_a_new_arch_is_one_builder_and_one_registration_line(monkeypatch):
    import torch
    monkeypatch.setattr(models, "ARCHS", Registry("architecture"))

    def build_tiny(num_classes, input_shape, width, depth):
        """Tiny: one linear layer."""
        return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(math.prod(input_shape), num_classes))

    models.register("tiny", build_tiny, family="tiny", width=4, depth=1, depth_rule=lambda d: max(1, d))
    assert models.build("tiny", 3, (1, 4, 4))(torch.zeros(2, 1, 4, 4)).shape == (2, 3)
    assert models.catalog() == [{"name": "tiny", "family": "tiny", "width": 4, "depth": 1,
                                 "doc": "Tiny: one linear layer."}]
    assert models.shrink_spec("tiny", 0.5, 1.0) == ("tiny", 2, 1)
    with pytest.raises(ConfigError, match="Unknown architecture 'tinny'. Did you mean 'tiny'?"):
        models.build("tinny", 3, (1, 4, 4))
    with pytest.raises(ValueError, match="registered twice"):
        models.register("tiny", build_tiny)
