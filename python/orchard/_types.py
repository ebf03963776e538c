"""Plain result types of the Python API (pickleable named tuples, no C++ behind them)."""

from __future__ import annotations

from typing import List, NamedTuple

import numpy as np


class ImageError(NamedTuple):
    """Why one image of a featurize() batch has no descriptor."""

    index: int  # position in the batch given to featurize()
    stage: str  # "decode", "preprocess" or "extract"
    message: str  # one line, without any file name


class FeaturizeResult(NamedTuple):
    """Descriptors of a batch: every input position is in exactly one of indices and errors.

    ``features[i]`` is the descriptor of ``images[indices[i]]``; both keep batch order.
    """

    indices: np.ndarray  # int64, shape (n_ok,)
    features: np.ndarray  # float32, shape (n_ok, dim), C-contiguous
    errors: List[ImageError]  # sorted by index
