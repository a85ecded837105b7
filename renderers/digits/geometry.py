"""Shape and placement model shared by the stroke and font renderers (constants + documentation).

Order of transforms, in glyph units (digit height 1, y down): elastic distortion → x-scale e^aspect
→ slant (shear x −= slant·y) → rotation; then placement into the 28×28 frame, either

* ``mnist``: MNIST's own normalisation (LeCun et al. 1998): the ink's bounding box is scaled, aspect
  kept, to fit a 20×20 box and the ink's centre of mass is put at the centre of the 28×28 field
  (computed from the skeleton/outline, so no second render is needed); or
* ``free``: Sim-PE-style geometry (Lin et al. 2025, "DP synthetic data via APIs 3: using
  simulators"): size and position are genes (20 px nominal height × e^size, bounding box centred at
  14 + (tx, ty)).

The elastic field is a sum of four fixed low-frequency sinusoids per axis (public constants) with
per-sample amplitudes — a smooth analogue of Simard et al.'s (2003) elastic distortion applied to
the skeleton instead of the pixels, so it costs nothing at raster time. The kernels live in
``raster.py``.
"""

from __future__ import annotations

import numpy as np

PLACEMENTS = ("mnist", "free")
N_ELASTIC = 8  # 4 amplitudes for x, 4 for y
# fixed spatial frequencies (rad per glyph unit) and phases of the elastic basis: public design choices
ELASTIC_W = np.array([[3.1, 0.9], [-1.7, 2.8], [0.6, -3.6], [2.4, 2.2]])
ELASTIC_P = np.array([0.3, 1.9, 4.0, 5.2])


def check_placement(placement: str) -> str:
    if placement not in PLACEMENTS:
        raise ValueError(f"placement must be one of {PLACEMENTS}, got {placement!r}")
    return placement
