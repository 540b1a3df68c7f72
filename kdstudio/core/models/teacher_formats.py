"""Teacher file formats: detection by suffix and magic bytes, safetensors (the `safetensors` package) and ONNX
(onnxruntime, optional) wrapped as a logits-only nn.Module. Used by teacher_io.py.
"""

from __future__ import annotations

import stat
import zipfile
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file
from torch import nn

from ..errors import KDError

TORCH_SUFFIXES = (".pt", ".pth", ".ts", ".tar", ".ckpt", ".bin", ".pkl")


def detect_format(path: Path) -> str:
    """"torchscript", "torch" (state_dict or pickle), "safetensors", "onnx" or "hf" (a Hugging Face model folder,
    one with a config.json); KDError when missing or unknown."""
    if not path.exists():
        raise KDError(f"Teacher file '{path}' does not exist; check teacher.path.")
    if path.is_dir():
        if (path / "config.json").is_file():
            return "hf"
        raise KDError(f"Teacher path '{path}' is a folder without a config.json; choose the model file inside it, "
                      "or a Hugging Face model folder (saved with save_pretrained).")
    if not stat.S_ISREG(path.stat().st_mode):  # a FIFO or device would block the read below for ever
        raise KDError(f"Teacher path '{path}' is not a regular file (a pipe or device); choose the model file.")
    suffix = path.suffix.lower()
    with open(path, "rb") as f:
        head = f.read(16)
    if not head:
        raise KDError(f"Teacher file '{path}' is empty; it may have been cut off while copying.")
    if suffix == ".onnx":
        return "onnx"
    if suffix == ".safetensors" or (len(head) > 9 and head[8:10] == b'{"' and suffix not in TORCH_SUFFIXES):
        return "safetensors"
    if head[:4] == b"PK\x03\x04":
        try:
            with zipfile.ZipFile(path) as z:
                names = z.namelist()
        except zipfile.BadZipFile:
            raise KDError(f"Teacher file '{path}' is a damaged archive; it may be corrupt or truncated.") from None
        return "torchscript" if any(n.endswith("constants.pkl") for n in names) else "torch"
    if suffix in TORCH_SUFFIXES or head[:1] == b"\x80":
        return "torch"
    if suffix in (".h5", ".keras", ".pb", ".tflite", ".savedmodel"):
        raise KDError(f"Teacher file '{path}' is a TensorFlow/Keras model; convert it to ONNX (e.g. with tf2onnx) "
                      "and load the .onnx file.")
    raise KDError(f"Teacher file '{path}' has an unknown format; use TorchScript (.pt/.ts), a state_dict "
                  "(.pt/.pth), .safetensors or .onnx.")


def read_safetensors(path: Path) -> dict[str, torch.Tensor]:
    """Tensors of a .safetensors file on the CPU; KDError when the file is damaged."""
    try:
        return load_file(str(path), device="cpu")
    except Exception as e:  # noqa: BLE001 - a bad header, cut data or an unknown dtype: a damaged file to the user
        msg = str(e).strip().splitlines()[0][:160] if str(e).strip() else type(e).__name__
        raise KDError(f"Teacher file '{path}' could not be read as safetensors ({msg}); it may be corrupt or "
                      "truncated.") from None


_ORT_TYPES = {"tensor(float)": np.float32, "tensor(double)": np.float64, "tensor(float16)": np.float16}


SCORE_NAMES = ("prob", "score", "logit", "output_probability", "probabilities", "output")


def class_output(outputs) -> int:
    """Index of the output that holds class scores: a float tensor of rank 2 (or a ZipMap, a sequence of maps, as
    skl2onnx writes), preferring names like 'probabilities'/'logits'; a label output (int64 or string, rank 1)
    comes first in scikit-learn graphs and is never it."""
    def rank(i_o):
        i, o = i_o
        typ, shape, name = str(o.type), list(o.shape or []), o.name.lower()
        float_2d = typ in _ORT_TYPES and len(shape) == 2
        zipmap = typ.startswith("seq(map(")
        named = any(n in name for n in SCORE_NAMES)
        return (float_2d or zipmap, float_2d, named, -i)
    return max(enumerate(outputs), key=rank)[0]


def _as_array(out) -> np.ndarray:
    """A ZipMap output (list of {class: probability}) as a (batch, classes) array in class order."""
    if isinstance(out, list) and out and isinstance(out[0], dict):
        keys = sorted(out[0])
        return np.asarray([[row[k] for k in keys] for row in out], dtype=np.float32)
    return np.asarray(out)


def looks_like_probabilities(scores: np.ndarray) -> bool:
    """Rows in [0, 1] that sum to 1: a graph that ends in softmax (or a ZipMap), not logits."""
    if scores.ndim != 2 or not len(scores) or scores.shape[1] < 2:
        return False
    return bool(np.all(scores >= -1e-6) and np.all(scores <= 1 + 1e-6)
                and np.allclose(scores.sum(1), 1.0, atol=1e-3))


class OnnxTeacher(nn.Module):
    """An ONNX model run by onnxruntime, as a logits-only, parameter-free module: no features, no fine-tuning.
    A graph that outputs probabilities gives their logarithms (log-softmax = logits up to a constant per row)."""

    logits_only = True

    def __init__(self, session, path: Path):
        super().__init__()
        self.session, self.path = session, path
        inp = session.get_inputs()[0]
        self.input_name, self.input_shape = inp.name, list(inp.shape)
        self.input_dtype = _ORT_TYPES.get(inp.type, np.float32)
        outputs = session.get_outputs()
        self.output_index = class_output(outputs)
        self.output_name = outputs[self.output_index].name
        self.probabilities = False  # set by load_onnx from a first batch
        first = self.input_shape[0] if self.input_shape else None
        self.fixed_batch = first if isinstance(first, int) and first > 0 else None

    @property
    def file_bytes(self) -> int:
        """Size of the .onnx file: what is shown where PyTorch would count parameters (it sees none here)."""
        try:
            return Path(self.path).stat().st_size
        except OSError:
            return 0

    def __deepcopy__(self, memo):
        """A copy that shares the onnxruntime session (which cannot be pickled, and is safe to share for runs)."""
        twin = OnnxTeacher.__new__(OnnxTeacher)
        nn.Module.__init__(twin)
        for k, v in self.__dict__.items():
            if not k.startswith("_"):
                setattr(twin, k, v)
        return twin

    def scores(self, arr: np.ndarray) -> np.ndarray:
        """The graph's class-score output for a batch, as a float array."""
        step = self.fixed_batch or max(1, len(arr))
        return np.concatenate([_as_array(self.session.run([self.output_name], {self.input_name: arr[i:i + step]})[0])
                               for i in range(0, len(arr), step)]).astype(np.float32, copy=False)

    def describe_input(self) -> str:
        """The input shape the ONNX graph declares, e.g. "(batch, 3, 224, 224)"."""
        dims = ["batch" if i == 0 and not isinstance(d, int) else str(d) if isinstance(d, int) else "any"
                for i, d in enumerate(self.input_shape)]
        return f"inputs of shape ({', '.join(dims)})"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        arr = x.detach().to("cpu", torch.float32).numpy().astype(self.input_dtype, copy=False)
        out = torch.from_numpy(self.scores(arr))
        if self.probabilities:  # log-probabilities are logits (softmax gives the same probabilities back)
            out = out.clamp_min(1e-12).log()
        return out.to(x.device)


def load_onnx(path: Path, bundle, device) -> OnnxTeacher:
    """An OnnxTeacher for `path`, its declared input shape checked against the data's."""
    try:
        import onnxruntime as ort
    except ImportError:
        raise KDError("ONNX teachers need onnxruntime, which is not installed; install it with "
                      "`pip install onnxruntime`.") from None
    providers = ["CPUExecutionProvider"]
    if torch.device(device).type == "cuda" and "CUDAExecutionProvider" in ort.get_available_providers():
        providers.insert(0, "CUDAExecutionProvider")
    try:
        opts = ort.SessionOptions()
        opts.log_severity_level = 3
        session = ort.InferenceSession(str(path), sess_options=opts, providers=providers)
    except Exception as e:  # noqa: BLE001
        msg = str(e).strip().splitlines()[0][:160] if str(e).strip() else type(e).__name__
        raise KDError(f"Teacher file '{path}' could not be read as ONNX ({msg}); it may be corrupt.") from None
    teacher = OnnxTeacher(session, path)
    want, have = teacher.input_shape[1:], list(bundle.input_shape)
    if len(want) != len(have) or any(isinstance(w, int) and w > 0 and w != h for w, h in zip(want, have)):
        raise KDError(f"The ONNX teacher in '{path}' expects {teacher.describe_input()} but the data gives "
                      f"(batch, {', '.join(map(str, have))}); {_shape_hint(want, have)}")
    return teacher


def _shape_hint(want: list, have: list) -> str:
    """What would make the data fit: image_size resizes images but never flattens them."""
    if len(want) == 1 and len(have) == 3:
        flat = int(np.prod(have))
        return (f"this teacher takes flat vectors of {want[0]} values, and data.image_size cannot flatten images "
                f"(the data's images have {flat} values each); use a teacher that takes images, or give the data as "
                "flat rows (the tensors or csv source)")
    if len(want) == 3 and len(have) == 3:
        return "set data.image_size (and the channels) to match it"
    return f"it takes inputs of rank {len(want) + 1} and the data gives rank {len(have) + 1}; use data of that shape"


def detect_probabilities(teacher: OnnxTeacher, x: torch.Tensor) -> bool:
    """Look at a first batch: a graph that outputs probabilities is switched to log-probabilities; returns that."""
    arr = x[:64].detach().to("cpu", torch.float32).numpy().astype(teacher.input_dtype, copy=False)
    teacher.probabilities = looks_like_probabilities(teacher.scores(arr))
    return teacher.probabilities
