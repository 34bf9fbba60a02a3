"""The colour-blind-safe palette: under simulated deuteranopia and protanopia (Machado, Oliveira &
Fernandes 2009, severity 1.0) neighbouring probability bands of the token chips stay clearly
different.

Threshold: CIE76 ΔE ≥ 10 and a lightness difference ΔL* ≥ 8 between neighbouring bands. A ΔE of
about 2.3 is one just-noticeable difference for patches side by side; chips are small, scattered
over a strip and often seen on a washed-out projector, so we ask for about four of those, and for
most of it in lightness, the one channel no colour vision deficiency (nor a greyscale printout)
takes away.
"""
from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtGui import QColor

from explorer import theme

# Machado et al. 2009, severity 1.0, applied to linear RGB
PROTANOPIA = np.array([[0.152286, 1.052583, -0.204868],
                       [0.114503, 0.786281, 0.099216],
                       [-0.003882, -0.048116, 1.051998]])
DEUTERANOPIA = np.array([[0.367322, 0.860646, -0.227968],
                         [0.280085, 0.672501, 0.047413],
                         [-0.011820, 0.042940, 0.968881]])
MIN_DE, MIN_DL = 10.0, 8.0


def _linear(c: QColor) -> np.ndarray:
    s = np.array([c.redF(), c.greenF(), c.blueF()])
    return np.where(s <= 0.04045, s / 12.92, ((s + 0.055) / 1.055) ** 2.4)


def _lab(lin: np.ndarray) -> np.ndarray:
    lin = np.clip(lin, 0.0, 1.0)
    xyz = np.array([[0.4124, 0.3576, 0.1805], [0.2126, 0.7152, 0.0722],
                    [0.0193, 0.1192, 0.9505]]) @ lin
    xyz = xyz / np.array([0.95047, 1.0, 1.08883])
    f = np.where(xyz > (6 / 29) ** 3, np.cbrt(xyz), xyz / (3 * (6 / 29) ** 2) + 4 / 29)
    return np.array([116 * f[1] - 16, 500 * (f[0] - f[1]), 200 * (f[1] - f[2])])


def _seen(c: QColor, matrix: np.ndarray | None) -> np.ndarray:
    lin = _linear(c)
    return _lab(lin if matrix is None else matrix @ lin)


def test_the_simulation_removes_red_green_differences():
    """Guard on the simulation itself: pure red and green, far apart for normal vision, come
    close under deuteranopia (so a palette that relied on them would fail below)."""
    red, green = QColor(200, 40, 40), QColor(40, 160, 40)
    normal = np.linalg.norm(_seen(red, None) - _seen(green, None))
    deutan = np.linalg.norm(_seen(red, DEUTERANOPIA) - _seen(green, DEUTERANOPIA))
    assert normal > 80 and deutan < normal / 3


@pytest.mark.parametrize("matrix", [None, PROTANOPIA, DEUTERANOPIA],
                         ids=["normal", "protanopia", "deuteranopia"])
def test_neighbouring_probability_bands_stay_distinguishable(matrix):
    theme.set_palette("colour-blind")
    colours = [theme.prob_color(p) for p in theme.PROB_BANDS]
    labs = [_seen(c, matrix) for c in colours]
    for a, b in zip(labs, labs[1:], strict=False):
        assert np.linalg.norm(a - b) >= MIN_DE
        assert abs(a[0] - b[0]) >= MIN_DL
    lightness = [lab[0] for lab in labs]
    assert lightness == sorted(lightness)  # more likely = lighter, in every vision


def test_chip_text_stays_readable_on_every_band():
    theme.set_palette("colour-blind")
    for p in np.geomspace(1e-3, 1.0, 25):
        fill = theme.prob_color(float(p))
        text = theme.text_on(fill)
        lf, lt = _seen(fill, None)[0], _seen(text, None)[0]
        assert abs(lf - lt) > 40  # dark text on light chips, white text on dark ones


def test_the_standard_red_green_chips_fail_the_same_check():
    """The check has teeth: the standard red → amber → green chips merge under deuteranopia."""
    theme.set_palette("standard")
    labs = [_seen(theme.prob_color(p), DEUTERANOPIA) for p in theme.PROB_BANDS]
    assert min(np.linalg.norm(a - b) for a, b in zip(labs, labs[1:], strict=False)) < MIN_DE
