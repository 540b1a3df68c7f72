"""Config schema: defaults, validation messages, TOML round trip, overrides."""

import pytest

from kdstudio.core import config
from kdstudio.core.config import Config
from kdstudio.core.errors import ConfigError, NotAvailableYet


def test_defaults_are_valid_and_round_trip_through_toml():
    cfg = Config()
    config.validate(cfg)
    again = config.loads(config.dumps(cfg, comments=True))
    assert again.to_dict() == cfg.to_dict()


def test_unknown_key_names_the_nearest_valid_key():
    with pytest.raises(ConfigError) as e:
        config.loads("[distill]\ntemprature = 2\n")
    assert "distill.temprature" in str(e.value) and "distill.temperature" in str(e.value)


def test_unknown_section_names_the_nearest():
    with pytest.raises(ConfigError) as e:
        config.loads("[distil]\nalpha = 0.5\n")
    assert "'distil'" in str(e.value) and "distill" in str(e.value)


def test_wrong_type_says_what_is_expected():
    with pytest.raises(ConfigError) as e:
        config.loads('[distill]\nepochs = "ten"\n')
    assert "distill.epochs" in str(e.value) and "whole number" in str(e.value)


def test_toml_syntax_error_shows_the_line():
    with pytest.raises(ConfigError) as e:
        config.loads("seed = 1\n[data\nbatch_size = 3\n", where="x.toml")
    assert "line 2" in str(e.value) and "x.toml" in str(e.value)


@pytest.mark.parametrize("key,value", [("distill.epochs", 0), ("teacher.epochs", -1), ("data.batch_size", 0),
                                       ("distill.lr", 0.0), ("teacher.lr", -0.1), ("distill.temperature", 0.0),
                                       ("distill.alpha", 1.5)])
def test_out_of_range_values_are_named(key, value):
    cfg = Config()
    cfg.set(key, value)
    with pytest.raises(ConfigError) as e:
        config.validate(cfg)
    assert key in str(e.value)
    assert e.value.key == key


def test_split_fractions_must_leave_training_data():
    cfg = Config()
    cfg.data.val_fraction, cfg.data.test_fraction = 0.5, 0.5
    found = dict(config.problems(cfg))
    assert "data.test_fraction" in found and "below 1" in found["data.test_fraction"]


def test_documented_but_unimplemented_choice_says_not_available_yet():
    cfg = Config()
    cfg.export.formats = ["torchscript", "tflite"]
    with pytest.raises(ConfigError, match="not one of"):
        config.validate(cfg)


def test_set_parses_values_from_strings():
    cfg = Config()
    cfg.set("distill.temperature", "2.5")
    cfg.set("baseline.enabled", "false")
    cfg.set("export.formats", '["state_dict"]')
    cfg.set("student.arch", "cnn")
    assert cfg.distill.temperature == 2.5 and cfg.baseline.enabled is False
    assert cfg.export.formats == ["state_dict"] and cfg.student.arch == "cnn"
    with pytest.raises(ConfigError, match="Did you mean 'distill.alpha'"):
        cfg.set("distill.alpah", "0.3")


def test_bad_device_string():
    cfg = Config()
    cfg.device = "gpu"
    assert "device" in dict(config.problems(cfg))


def test_missing_file_message(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        config.load(tmp_path / "nope.toml")


def test_documented_choices_not_yet_built_say_so():
    """Every documented-but-unbuilt choice gives a "not available yet" sentence (none left is fine too)."""
    for key in config.all_keys():
        meta = config.field_info(key).metadata
        for choice in set(meta.get("choices") or ()) - set(meta.get("available") or meta.get("choices") or ()):
            cfg = Config()
            cfg.set(key, [choice] if isinstance(cfg.get(key), list) else choice)
            cfg.data.path = cfg.teacher.path = "x"
            with pytest.raises(NotAvailableYet, match="not available yet"):
                config.validate(cfg)


@pytest.mark.parametrize("key,value,expect", [("data.mean", '["x"]', "list of numbers"),
                                              ("distill.student_layers", "[1]", "list of texts"),
                                              ("teacher.weights", '["a", "b"]', "list of numbers")])
def test_list_elements_have_the_right_type(key, value, expect):
    cfg = Config()
    cfg.set(key, value)
    with pytest.raises(ConfigError, match=expect) as e:
        config.validate(cfg)
    assert e.value.key == key


def test_std_needs_a_matching_mean():
    cfg = Config()
    cfg.data.std = [0.5]
    with pytest.raises(ConfigError, match="data.mean"):
        config.validate(cfg)


# ---- method defaults of the shared [distill] fields (issue 16 §4) ------------------------------------------

def test_a_method_takes_its_own_alpha_and_temperature_unless_the_config_sets_them():
    assert config.loads('[distill]\nmethod = "dkd"\n').distill.alpha == 1.0  # dkd's default, not kd's 0.9
    assert config.loads('[distill]\nmethod = "soft_mse"\n').distill.temperature == 1.0
    assert config.loads('[distill]\nmethod = "dkd"\nalpha = 0.9\n').distill.alpha == 0.9  # set: kept
    cfg = Config()  # kd: 0.9 and 4
    cfg.set("distill.method", "dkd")  # --set distill.method=dkd, or the Method page's combo box
    assert (cfg.distill.alpha, cfg.distill.temperature) == (1.0, 4.0)
    cfg.set("distill.method", "kd")
    assert cfg.distill.alpha == 0.9
    cfg.set("distill.alpha", 0.5)
    cfg.set("distill.method", "dkd")
    assert cfg.distill.alpha == 0.5  # a value the user chose follows no method


def test_alpha_is_checked_as_the_method_checks_it():
    cfg = Config()
    cfg.set("distill.method", "dkd")
    cfg.set("distill.alpha", 2.0)  # dkd: CE keeps weight 1, alpha weights TCKD and may pass 1
    assert config.problems(cfg) == []
    cfg.set("distill.method", "kd")
    [(key, message)] = config.problems(cfg)
    assert key == "distill.alpha" and "between 0 and 1" in message and "'kd'" in message


def test_alpha_help_says_what_it_weighs_per_method():
    from kdstudio.core.config import methods
    assert "1 − alpha weights cross-entropy" in methods.alpha_help("kd")
    dkd = methods.alpha_help("dkd")
    assert "TCKD" in dkd and "cross-entropy keeps weight 1" in dkd and dkd.endswith("(its default 1)")
    assert methods.alpha_help("dist") == "not used by dist"


def test_a_file_edited_to_dkd_stays_trimmed_and_reads_back_the_same():
    from kdstudio.core.config import toml_edit
    text = '[distill]\nmethod = "kd"\n'
    cfg = config.loads(text)
    cfg.set("distill.method", "dkd")
    out = toml_edit.update(text, cfg)
    assert "alpha" not in out and config.loads(out).distill.alpha == 1.0

