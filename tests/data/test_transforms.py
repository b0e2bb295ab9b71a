"""Image geometry: square crops and resizing."""
from __future__ import annotations

import numpy as np
import pytest

from micronbert.data.transforms import centre_square, resize_square


def test_resize_square_refuses_a_box_outside_the_frame():
    with pytest.raises(ValueError, match="outside"):
        resize_square(np.zeros((10, 10, 3), np.uint8), 8, (20, 20, 5, 5))


def test_centre_square_crops_the_long_side_and_resize_keeps_or_stretches():
    image = np.zeros((20, 40, 3), np.uint8)
    image[:, 10:30] = 255
    assert centre_square(image) == (10, 0, 20, 20)
    assert (resize_square(image, 10, centre_square(image)) == 255).all()
    stretched = resize_square(image, 10)
    assert stretched.shape == (10, 10, 3) and (stretched[:, 0] == 0).all() and (stretched[:, 5] == 255).all()
    same = np.arange(48, dtype=np.uint8).reshape(4, 4, 3)
    assert np.array_equal(resize_square(same, 4), same)
