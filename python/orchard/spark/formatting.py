"""Text and binary encodings shared with the C++ writers, so that a Spark run writes the same
bytes as the CLI for the same numbers.

- ``format_float32``: the text of C++ ``std::to_chars(float)`` (src/write/csv.cc), i.e. the
  shortest digits that read back as the same float32, printed as ``printf`` would with ``%f``
  or ``%e``, whichever is shorter (``%f`` on ties). When ``%f`` wins for an integral value
  (every float32 from 2^24 up, e.g. 7119781888), the exact integer is printed, not the
  shortest digits padded with zeros. Python's ``repr(float(x))`` gives the shortest digits of
  the *double*, and numpy's ``str(np.float32(x))`` switches notation at other thresholds, so
  neither is the same text.
- ``csv_field``: the CLI's quoting (``CsvField``): quoted only when the text holds ``,``,
  ``"``, CR or LF, with ``"`` doubled.
- ``npy_header``: the NPY 1.0 header of a C-order float32 (n, k) matrix, as NpyWriter writes it.

Pure functions; no state.
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Sequence

import numpy as np

__all__ = ["format_float32", "csv_field", "csv_rows", "npy_header"]


def format_float32(value: float | np.floating) -> str:
    """``std::to_chars`` of ``float(value)`` rounded to float32 (see the module doc)."""
    f = np.float32(value)
    if np.isnan(f):
        return "-nan" if np.signbit(f) else "nan"
    if np.isinf(f):
        return "-inf" if f < 0 else "inf"
    if f == 0:
        return "-0" if np.signbit(f) else "0"
    # Dragon4 in unique mode: the shortest digits that round-trip as float32.
    mantissa, _, exponent_text = np.format_float_scientific(f, unique=True, trim="-").partition("e")
    exponent = int(exponent_text)
    sign = ""
    if mantissa[0] == "-":
        sign, mantissa = "-", mantissa[1:]
    digits = mantissa.replace(".", "")
    n = len(digits)
    scientific = (digits[0] + ("." + digits[1:] if n > 1 else "") + "e" +
                  ("-" if exponent < 0 else "+") + f"{abs(exponent):02d}")
    if exponent >= 0:
        if n <= exponent + 1:  # integral: %f prints the exact value
            fixed = str(abs(int(f)))
        else:
            fixed = digits[:exponent + 1] + "." + digits[exponent + 1:]
    else:
        fixed = "0." + "0" * (-exponent - 1) + digits
    return sign + (fixed if len(fixed) <= len(scientific) else scientific)


def csv_field(text: str) -> str:
    """The CLI's CSV quoting of one field."""
    if any(c in text for c in ',"\r\n'):
        return '"' + text.replace('"', '""') + '"'
    return text


def csv_rows(paths: Sequence[str], labels: Sequence[str], values: np.ndarray) -> str:
    """Lines ``path,label,v1,...,vk\\n`` for each row of the float32 matrix ``values``
    (len(paths) x k), exactly as features.csv holds them."""
    if values.ndim != 2 or values.shape[0] != len(paths) or len(labels) != len(paths):
        raise ValueError(f"csv_rows: {len(paths)} paths, {len(labels)} labels and values of "
                         f"shape {values.shape} do not match")
    out = io.StringIO()
    rows = values.astype(np.float32, copy=False).tolist()  # Python floats holding float32 values
    for path, label, row in zip(paths, labels, rows):
        out.write(csv_field(path))
        out.write(",")
        out.write(csv_field(label))
        for v in row:
            out.write(",")
            out.write(format_float32(v))
        out.write("\n")
    return out.getvalue()


def csv_line(fields: Iterable[str]) -> str:
    return ",".join(csv_field(f) for f in fields) + "\n"


def npy_header(rows: int, cols: int) -> bytes:
    """NPY 1.0 header for a little-endian float32 C-order (rows, cols) matrix; the data
    follows it directly."""
    out = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        out, {"descr": "<f4", "fortran_order": False, "shape": (rows, cols)})
    return out.getvalue()
