"""The teacher's own input preparation, read from where the teacher came from, and how images are sized.

A pretrained teacher is only right on inputs prepared the way it was trained: resized (shorter side) with its
interpolation, centre-cropped, scaled to [0, 1] and normalised with its mean and std. This reads that recipe from
torchvision weights' `transforms()` (`teacher.pretrained` names the weights enum), timm's `pretrained_cfg` and a
Hugging Face folder's `preprocessor_config.json`, and resolves it into the data settings (`data.image_size`,
`data.resize`, `data.interpolation`, `data.mean`, `data.std`) of the run's effective config, so both data paths
(resident and streamed) apply the same thing. `data.preprocess` chooses: auto = the teacher's when it names one,
teacher = the teacher's or an error, own = the data settings as written.

Nothing is downloaded: torchvision and timm keep this metadata in the installed package, a Hugging Face folder on
disk. Torch-free apart from those lazy imports.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..errors import ConfigError, KDError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
INTERPOLATIONS = ("nearest", "bilinear", "bicubic", "lanczos", "box", "hamming")
PIL_RESAMPLE = {0: "nearest", 1: "lanczos", 2: "bilinear", 3: "bicubic", 4: "box", 5: "hamming"}
HF_CONFIG = "config.json"
HF_PREPROCESSOR = "preprocessor_config.json"


@dataclass
class Preprocessing:
    """A teacher's input recipe: resize the shorter side to `resize` with `interpolation` and centre-crop to
    `size` (resize 0 = straight to size×size), scale to [0, 1], subtract `mean`, divide by `std`."""

    size: int
    resize: int
    interpolation: str
    mean: list[float]
    std: list[float]
    source: str  # where it was read, for the log, the summary and the pages
    class_names: list[str] = field(default_factory=list)  # the teacher's classes in output order, when it names them

    @property
    def crop_pct(self) -> float:
        """The centre crop's share of the resized shorter side (1.0 = no crop)."""
        return self.size / self.resize if self.resize else 1.0

    def describe(self) -> str:
        """One line for people: "inputs: 224×224, bicubic, crop 0.875, ImageNet mean/std — from the teacher (…)"."""
        return f"inputs: {describe_inputs(self.size, self.resize, self.interpolation, self.mean, self.std)} — " \
               f"from the teacher ({self.source})"

    def to_dict(self) -> dict:
        """Plain data for summary.json (class names counted, not listed)."""
        d = asdict(self)
        d["crop_pct"] = round(self.crop_pct, 4)
        d["class_names"] = len(self.class_names)
        d["describe"] = self.describe()
        return d


def describe_inputs(size: int, resize: int, interpolation: str, mean, std, shape: tuple = ()) -> str:
    """"224×224, bicubic, crop 0.875, ImageNet mean/std" for any sizing and normalisation (`shape`: the (C, H, W)
    the images have when size is 0, "as read")."""
    parts = [f"{size}×{size}" if size else f"{shape[1]}×{shape[2]} as read" if len(shape) == 3 else "size as read"]
    if size:
        parts.append(interpolation)
    if resize and size:
        parts.append(f"crop {size / resize:.3g} of {resize}")
    mean, std = [round(float(v), 3) for v in mean or []], [round(float(v), 3) for v in std or []]
    if mean == [round(v, 3) for v in IMAGENET_MEAN] and std == [round(v, 3) for v in IMAGENET_STD]:
        parts.append("ImageNet mean/std")
    elif mean:
        parts.append(f"mean {mean}, std {std or [1.0]}")
    return ", ".join(parts)


# ---- reading each source ----------------------------------------------------------------------------------

def _square(h: int, w: int, where: str, warnings: list[str]) -> int:
    if h != w:
        warnings.append(f"The teacher's inputs are {h}×{w} ({where}); images are made square at {h}×{h}, the only "
                        "shape data.image_size describes.")
    return int(h)


def from_torchvision(arch_name: str, weights: str, warnings: list[str]) -> Preprocessing:
    """The recipe of a torchvision weights enum ("ResNet18_Weights.IMAGENET1K_V1", "IMAGENET1K_V1" or "DEFAULT"
    for the architecture's own enum); its categories as class names."""
    try:
        import torchvision.models as tvm
    except Exception as e:  # noqa: BLE001 - a CPU torch beside a CUDA torchvision fails here
        raise KDError(f"teacher.pretrained = '{weights}' needs torchvision, which does not import here "
                      f"({str(e).splitlines()[0] if str(e) else type(e).__name__}); install it with "
                      "pip install \"kdstudio[vision]\".") from None
    try:
        w = tvm.get_weight(weights) if "." in weights else tvm.get_model_weights(arch_name)[weights]
    except (KeyError, ValueError, AttributeError) as e:
        try:
            known = [f"{cls.__name__}.{m.name}" for cls in [tvm.get_model_weights(arch_name)] for m in cls]
        except Exception:  # noqa: BLE001 - an unknown architecture too
            known = []
        hint = f" {arch_name} has {', '.join(known)}." if known else ""
        raise ConfigError(f"teacher.pretrained = '{weights}' is not a torchvision weights name ({e}).{hint}",
                          key="teacher.pretrained") from None
    t = w.transforms()
    crop, resize = list(getattr(t, "crop_size", [0])), list(getattr(t, "resize_size", [0]))
    size = crop[0] if crop else 0
    interp = str(getattr(t, "interpolation", "bilinear")).rsplit(".", 1)[-1].lower()
    return Preprocessing(size=size, resize=resize[0] if resize else 0,
                         interpolation=interp if interp in INTERPOLATIONS else "bilinear",
                         mean=list(t.mean), std=list(t.std), source=f"torchvision weights {type(w).__name__}.{w.name}",
                         class_names=list(w.meta.get("categories") or []))


def from_timm(name: str, tag: str, warnings: list[str]) -> Preprocessing:
    """The recipe of timm's pretrained_cfg for `name` (with `tag`, else the model's default tag)."""
    try:
        import timm
    except Exception as e:  # noqa: BLE001
        raise KDError(f"A timm teacher needs timm, which does not import here "
                      f"({str(e).splitlines()[0] if str(e) else type(e).__name__}); install it with "
                      "pip install \"kdstudio[vision]\".") from None
    full = f"{name}.{tag}" if tag and "." not in name else name
    cfg = timm.models.get_pretrained_cfg(full, allow_unregistered=False) if hasattr(timm.models, "get_pretrained_cfg") \
        else None
    if cfg is None:
        raise ConfigError(f"timm has no pretrained configuration for '{full}'; check teacher.arch and "
                          "teacher.pretrained (a tag such as 'a1_in1k'), or set data.preprocess = \"own\".",
                          key="teacher.pretrained" if tag else "teacher.arch")
    c = timm.data.resolve_data_config({}, pretrained_cfg=cfg.to_dict())
    _, h, w = c["input_size"]
    size = _square(h, w, f"timm {full}", warnings)
    crop_pct = float(c.get("crop_pct") or 1.0)
    if c.get("crop_mode", "center") != "center":
        warnings.append(f"timm's '{full}' crops with mode '{c['crop_mode']}'; a centre crop is used here.")
    resize = math.floor(size / crop_pct)  # timm's eval transform: shorter side to floor(size / crop_pct), crop
    interp = c.get("interpolation", "bilinear")
    return Preprocessing(size=size, resize=resize, interpolation=interp if interp in INTERPOLATIONS else "bilinear",
                         mean=[float(v) for v in c["mean"]], std=[float(v) for v in c["std"]],
                         source=f"timm pretrained_cfg of {cfg.architecture}.{cfg.tag}" if cfg.tag else
                         f"timm pretrained_cfg of {cfg.architecture}",
                         class_names=list(cfg.label_names or []))


def is_hf_folder(path: str | Path) -> bool:
    """Whether `path` is a folder with a config.json (a save_pretrained folder)."""
    p = Path(path).expanduser()
    return p.is_dir() and (p / HF_CONFIG).is_file()


def read_hf_config(folder: str | Path) -> dict:
    """config.json of a model folder as a dict; KDError (naming the folder) when it is missing or not JSON."""
    folder = Path(folder).expanduser()
    if folder.exists() and not folder.is_dir():
        raise KDError(f"Teacher path '{folder}' is a file, not a Hugging Face model folder; choose the folder that "
                      "holds config.json (Folder… in the app), or set teacher.arch to the architecture of that file.")
    if not folder.is_dir():
        raise KDError(f"Teacher folder '{folder}' does not exist; check teacher.path.")
    file = folder / HF_CONFIG
    if not file.is_file():
        raise KDError(f"Teacher folder '{folder}' has no config.json, so it is not a Hugging Face model folder; "
                      "save the model there with save_pretrained, or choose a model file.")
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as e:
        raise KDError(f"The config.json in teacher folder '{folder}' is not valid JSON ({type(e).__name__}: "
                      f"{str(e).splitlines()[0][:120] if str(e) else ''}); save the model again with "
                      "save_pretrained.") from None
    if not isinstance(data, dict):
        raise KDError(f"The config.json in teacher folder '{folder}' holds a {type(data).__name__}, not a model "
                      "configuration; save the model again with save_pretrained.")
    return data


def hf_class_names(folder: str | Path) -> list[str]:
    """The classes in output order from config.json's id2label; [] when absent, unreadable or only the default
    names LABEL_0, LABEL_1, … that transformers writes when none were given."""
    try:
        labels = read_hf_config(folder).get("id2label")
    except KDError:
        return []
    if not isinstance(labels, dict) or not labels:
        return []
    try:
        by_index = {int(k): str(v) for k, v in labels.items()}
    except (TypeError, ValueError):
        return []
    if sorted(by_index) != list(range(len(by_index))):
        return []
    names = [by_index[i] for i in range(len(by_index))]
    return [] if names == [f"LABEL_{i}" for i in range(len(names))] else names


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise KDError(f"'{path}' cannot be read as JSON ({str(e).splitlines()[0]}); the model folder may be "
                      "damaged: save it again with save_pretrained.") from None
    if not isinstance(data, dict):
        raise KDError(f"'{path}' holds a {type(data).__name__}, not a JSON object; save the folder again with "
                      "save_pretrained.")
    return data


def from_hf(folder: str | Path, warnings: list[str]) -> Preprocessing | None:
    """The recipe of a Hugging Face folder's preprocessor_config.json (None when the folder has none)."""
    folder = Path(folder).expanduser()
    path = folder / HF_PREPROCESSOR
    if not path.is_file():
        return None
    c = _read_json(path)
    size_spec = c.get("size") or {}
    crop_spec = c.get("crop_size") or {}
    if isinstance(size_spec, int):
        size_spec = {"shortest_edge": size_spec}
    if isinstance(crop_spec, int):
        crop_spec = {"height": crop_spec, "width": crop_spec}
    resize = size = 0
    if c.get("do_center_crop") and crop_spec:
        size = _square(int(crop_spec.get("height", 0)), int(crop_spec.get("width", 0)), str(path), warnings)
        resize = int(size_spec.get("shortest_edge") or size_spec.get("height") or 0) if c.get("do_resize", True) else 0
    elif "shortest_edge" in size_spec:
        size = int(size_spec["shortest_edge"])
        crop_pct = c.get("crop_pct")
        # ConvNeXt-style processors: below 384 px, resize to size / crop_pct then crop size (transformers' rule)
        resize = int(size / crop_pct) if crop_pct and size < 384 else 0
    elif "height" in size_spec:
        size = _square(int(size_spec["height"]), int(size_spec.get("width", size_spec["height"])), str(path),
                       warnings)
    if not c.get("do_resize", True) and not c.get("do_center_crop"):
        size = resize = 0
    if resize and resize < size:  # a crop larger than the resized image: crop the shorter side itself
        resize = size
    mean = [float(v) for v in c.get("image_mean") or []] if c.get("do_normalize", True) else []
    std = [float(v) for v in c.get("image_std") or []] if c.get("do_normalize", True) else []
    if c.get("do_rescale", True) and abs(float(c.get("rescale_factor", 1 / 255)) - 1 / 255) > 1e-9:
        warnings.append(f"{path.name} rescales by {c['rescale_factor']}, not 1/255; inputs are scaled to [0, 1] "
                        "here, so the teacher may see other values than in its training.")
    interp = PIL_RESAMPLE.get(int(c.get("resample", 2)) if str(c.get("resample", 2)).isdigit() else 2, "bilinear")
    return Preprocessing(size=size, resize=resize, interpolation=interp, mean=mean, std=std,
                         source=f"{path.name} of {folder.name} ({c.get('image_processor_type', 'image processor')})",
                         class_names=hf_class_names(folder))


# ---- resolving into the run's data settings ---------------------------------------------------------------

def teacher_recipe(cfg, warnings: list[str]) -> Preprocessing | None:
    """The configured teacher's own preprocessing, or None when it names none (a teacher trained here, a plain
    state_dict of a built-in arch, torchvision without teacher.pretrained)."""
    t = cfg.teacher
    if t.source != "file":
        return None
    if t.arch == "hf" or (t.path and is_hf_folder(t.path)):
        if not t.path or not is_hf_folder(t.path):
            raise ConfigError(f"teacher.arch = \"hf\" needs teacher.path to be a Hugging Face model folder (with "
                              f"{HF_CONFIG}); '{t.path}' is not one.", key="teacher.path")
        return from_hf(t.path, warnings)
    prefix, _, name = t.arch.partition(":")
    if prefix == "timm" and name:
        base, _, tag = name.partition(".")
        return from_timm(base, tag or t.pretrained, warnings)
    if prefix == "torchvision" and name and t.pretrained:
        return from_torchvision(name, t.pretrained, warnings)
    return None


def resolve(cfg, warnings: list[str]):
    """(effective config, Preprocessing or None): with the teacher's recipe applied to the data settings per
    data.preprocess; the user's own config object is never changed."""
    d = cfg.data
    if d.preprocess == "own":
        return cfg, None
    recipe = teacher_recipe(cfg, warnings)
    if recipe is None:
        if d.preprocess == "teacher":
            raise ConfigError("data.preprocess = \"teacher\" but the teacher names no preprocessing (it is read from "
                              "a Hugging Face folder, a timm model, or torchvision weights named in "
                              "teacher.pretrained); name them, or set data.preprocess = \"auto\".",
                              key="data.preprocess")
        return cfg, None
    if d.source != "folder":
        warnings.append(f"The teacher expects {describe_inputs(recipe.size, recipe.resize, recipe.interpolation, recipe.mean, recipe.std)} "
                        f"({recipe.source}); the {d.source} source's inputs are used as they are, so prepare them "
                        "that way (or set data.preprocess = \"own\" to silence this).")
        return cfg, None
    ignored = [k for k, mine, theirs in (("data.image_size", d.image_size, recipe.size),
                                         ("data.resize", d.resize, recipe.resize),
                                         ("data.mean", list(d.mean), recipe.mean),
                                         ("data.std", list(d.std), recipe.std))
               if mine and mine != theirs]
    if ignored:
        warnings.append(f"{', '.join(ignored)} set in the config {'is' if len(ignored) == 1 else 'are'} replaced by "
                        f"the teacher's preprocessing ({recipe.source}); set data.preprocess = \"own\" to use yours.")
    eff = cfg.copy()
    e = eff.data
    e.image_size, e.resize, e.interpolation = recipe.size, recipe.resize, recipe.interpolation
    e.mean, e.std = list(recipe.mean), list(recipe.std)
    if not recipe.mean:
        e.normalize = "none"
    return eff, recipe


def order_classes(cfg, data_names: list[str], recipe: Preprocessing | None, warnings: list[str]):
    """The effective config with data.class_names = the teacher's output order, when the teacher names its
    classes and they are the data's classes in another order (else unchanged, with a warning on a mismatch)."""
    if recipe is None or not recipe.class_names or cfg.data.class_names or not data_names:
        return cfg
    theirs = recipe.class_names
    if list(data_names) == list(theirs):
        return cfg
    if sorted(data_names) == sorted(theirs):
        eff = cfg.copy()
        eff.data.class_names = list(theirs)
        warnings.append(f"The data's classes are put in the teacher's output order ({recipe.source}): "
                        f"{', '.join(theirs[:6])}{', …' if len(theirs) > 6 else ''}.")
        return eff
    if len(theirs) == len(data_names):
        warnings.append(f"The teacher names classes {', '.join(theirs[:4])}… but the data's are "
                        f"{', '.join(data_names[:4])}…; if they are the same classes under other names, set "
                        "data.class_names to the data's names in the teacher's output order.")
    return cfg
