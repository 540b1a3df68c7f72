"""The curves' palette: every curve of a plot has its own colour for every method (and pair of methods) the loss
registry has, a term keeps its colour across runs, and every colour reads on light and dark backgrounds."""

import functools

import pytest

pytest.importorskip("PySide6")


@functools.cache
def _method_terms() -> dict[str, tuple[str, list[str]]]:
    """Each registered method's kind and the terms it reports, by running it once on a tiny batch."""
    import torch
    from kdstudio.core import losses
    torch.manual_seed(0)
    out = {}
    for name, meta in losses.available().items():
        m = losses.create(name)
        if meta["kind"] == "feature":
            f = torch.randn(4, 3, 4, 4)
            terms = m(f, f + 0.1 * torch.randn_like(f))
        else:
            terms = m(torch.randn(4, 5), torch.randn(4, 5), torch.tensor([0, 1, 2, 3]), epoch=1)
        out[name] = (meta["kind"], [t for t in terms if t != "total"])
    return out


def _records(terms: list[str]) -> list[dict]:
    """A run's metrics lines: a teacher, the distillation with these terms, a baseline."""
    out = []
    for e in (1, 2):
        for k in (1, 2):
            base = {"kind": "step", "epoch": e, "epochs": 2, "step": k, "steps": 2, "lr": 0.01}
            out.append({**base, "stage": "teacher", "ce": 1.0 / e, "total": 1.0 / e})
            out.append({**base, "stage": "distill", "total": 1.0 / e, "teacher_ce": 0.1,
                        **{t: 0.5 / (e + k) for t in terms}})
            out.append({**base, "stage": "baseline", "ce": 0.9 / e, "total": 0.9 / e})
        for stage in ("teacher", "distill", "baseline"):
            out.append({"kind": "epoch", "stage": stage, "epoch": e, "epochs": 2, "val_acc": 0.5 + e / 10})
    return out


def _series(terms, label="run"):
    from kdstudio.gui.series import RunSeries
    return RunSeries(label).extend(_records(terms))


def _combinations():
    """Every logit method alone, every feature method alone, and every logit method with every feature method."""
    methods = _method_terms()
    logit = [(n, t) for n, (k, t) in methods.items() if k == "logit"]
    feature = [(n, t) for n, (k, t) in methods.items() if k == "feature"]
    assert {"kd", "dkd", "dist"} <= {n for n, _ in logit} and {"fitnet", "rkd"} <= {n for n, _ in feature}
    combos = [(n, t) for n, t in logit] + [(n, ["ce"] + t) for n, t in feature]
    combos += [(f"{ln}+{fn}", lt + ft) for ln, lt in logit for fn, ft in feature]
    return combos


def test_every_curve_on_a_plot_has_its_own_colour_for_every_method_and_pair_of_methods():
    from kdstudio.gui.plot_specs import single_specs
    for name, terms in _combinations():
        specs = [s for s in single_specs(_series(terms), 0.5, True) if s.name]
        for plot in ("loss", "acc", "lr"):
            colours = [s.pen.color().name() for s in specs if s.plot == plot]
            assert len(colours) == len(set(colours)), (name, plot, [(s.name, s.pen.color().name())
                                                                     for s in specs if s.plot == plot])
        # every reported term has a curve: the teacher's and baseline's CE, and the distillation's terms
        assert len([s for s in specs if s.plot == "loss"]) == len(set(terms) | {"total", "teacher_ce"}) + 2, name


def test_a_term_keeps_its_colour_across_runs_of_different_methods():
    from kdstudio.gui.plot_specs import single_specs

    def colours(terms):
        return {s.key[1:3]: s.pen.color().name() for s in single_specs(_series(terms), 0.0, False)
                if s.plot == "loss"}

    seen: dict = {}
    for _, terms in _combinations() + [("new", ["ce", "kd", "brand_new_term"]), ("new2", ["ce", "brand_new_term"])]:
        for key, colour in colours(terms).items():
            assert seen.setdefault(key, colour) == colour, key
    assert seen[("distill", "ce")] != seen[("distill", "tckd")]  # the review's collision: dkd's TCKD was CE green
    assert seen[("distill", "fitnet")] != seen[("distill", "total")]


def test_unknown_terms_never_share_a_colour_on_one_plot():
    from kdstudio.gui.palette import plot_colors
    keys = ["total", "ce", "kd"] + [f"term_{i}" for i in range(12)]
    colours = plot_colors(keys)
    assert len(set(colours.values())) == len(keys)
    assert plot_colors(keys) == colours  # the same curves always look the same


def test_every_colour_reads_on_light_and_dark_backgrounds():
    from kdstudio.gui import palette
    every = set(palette.TERM_COLORS.values()) | set(palette.STAGE_COLORS.values()) | set(palette.FALLBACK) | \
        set(palette.RUN_COLORS)
    for colour in every:
        assert palette.contrast(colour, "#ffffff") >= 3.0, colour
        assert palette.contrast(colour, palette.DARK_BACKGROUND) >= 3.0, colour
