"""Reading the run's own checkpoints: `weights_only=True` always, and every kind of damage as one sentence.

An empty, truncated or foreign file in checkpoints/ must never end a resume, `eval` or `export` with a traceback,
nor pass on torch's advice to retry with `weights_only=False` (that would run code from the file).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import torch

from ..errors import KDError


def _reason(e: BaseException) -> str:
    lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
    first = lines[0][:120] if lines else type(e).__name__
    return type(e).__name__ if "weights_only" in first else first  # never repeat torch's unsafe advice


def damaged(path: Path, reason: str) -> KDError:
    """The one sentence for a checkpoint that cannot be used."""
    return KDError(f"The checkpoint '{path}' cannot be used ({reason}); it is damaged or not a KD Studio "
                   "checkpoint. Delete it to train that stage again from its start, or start a new run.")


def read_checkpoint(path: Path, map_location="cpu", *, need: tuple[str, ...] = ()) -> dict:
    """A checkpoint dict read with weights_only=True, holding the keys in `need`; KDError (see `damaged`) else."""
    path = Path(path)
    try:
        if path.stat().st_size == 0:
            raise damaged(path, "the file is empty; the run may have been killed while writing it")
        with warnings.catch_warnings():  # torch's notes on foreign pickles are not for the user
            warnings.simplefilter("ignore")
            state = torch.load(path, map_location=map_location, weights_only=True)
    except KDError:
        raise
    except Exception as e:  # noqa: BLE001 - zip, EOF, unpickling and storage errors all mean a damaged file
        raise damaged(path, _reason(e)) from None
    if not isinstance(state, dict):
        raise damaged(path, f"it holds a {type(state).__name__}, not a checkpoint")
    missing = [k for k in need if k not in state]
    if missing:
        raise damaged(path, f"it has no '{missing[0]}' entry")
    return state


def restore(runner, state: dict, path: Path) -> None:
    """runner.load_checkpoint(state), with a checkpoint of the wrong shape or content as one sentence."""
    try:
        runner.load_checkpoint(state)
    except (KeyError, RuntimeError, ValueError, TypeError, IndexError) as e:
        raise damaged(path, f"it does not fit this stage: {_reason(e)}") from None
