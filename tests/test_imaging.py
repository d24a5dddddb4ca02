"""HU -> attenuation and the radiograph appearance (numpy and torch alike)."""

from __future__ import annotations

import numpy as np
import pytest

from synthaug.errors import SynthaugError
from synthaug.kit.xray import MU_WATER, hu_to_mu, radiograph


def test_hu_to_mu_water_air_bone_and_padding():
    mu = hu_to_mu(np.array([0.0, -1000.0, -2048.0, 1000.0, -500.0]))
    np.testing.assert_allclose(mu, [MU_WATER, 0.0, 0.0, 2 * MU_WATER, MU_WATER / 2], rtol=1e-6)
    assert mu.dtype == np.float32
    assert hu_to_mu(np.array([0.0]), mu_water=0.02)[0] == pytest.approx(0.02)
    with pytest.raises(SynthaugError, match="mu_water"):
        hu_to_mu(np.zeros(2), mu_water=0.0)


def test_radiograph_window_percentile_and_fixed():
    p = np.linspace(0.0, 4.0, 64 * 64).reshape(1, 64, 64)
    image = radiograph(p)
    assert image.dtype == np.float32 and image.min() == 0.0 and image.max() == 1.0
    assert (image == 1.0).mean() == pytest.approx(0.005, abs=0.001)  # the densest 0.5 % saturate
    fixed = radiograph(p, window=(1.0, 3.0))
    assert fixed[0, 0, 0] == 0.0 and fixed[0, -1, -1] == 1.0
    middle = np.abs(p[0] - 2.0).argmin()
    assert fixed.reshape(-1)[middle] == pytest.approx(0.5, abs=1e-3)
    with pytest.raises(SynthaugError, match="window"):
        radiograph(p, window=(3.0, 1.0))
    with pytest.raises(SynthaugError, match="photons"):
        radiograph(p, photons=0)


def test_poisson_noise_is_seeded_and_unbiased_at_high_counts():
    p = np.full((1, 64, 64), 1.5)
    a = radiograph(p, photons=1e4, rng=np.random.default_rng(7), window=(0.0, 3.0))
    b = radiograph(p, photons=1e4, rng=np.random.default_rng(7), window=(0.0, 3.0))
    np.testing.assert_array_equal(a, b)
    assert float(a.std()) > 0
    assert float(a.mean()) == pytest.approx(0.5, abs=0.005)  # log of Poisson counts is nearly unbiased
    noisy_low = radiograph(p, photons=100, rng=np.random.default_rng(7), window=(0.0, 3.0))
    assert float(noisy_low.std()) > 3 * float(a.std())  # fewer photons, more noise


def test_torch_radiograph_matches_numpy_and_keeps_gradients():
    torch = pytest.importorskip("torch")
    p = np.random.default_rng(0).uniform(0, 3, (2, 1, 16, 16))
    expected = radiograph(p)
    tensor = torch.tensor(p, requires_grad=True)
    image = radiograph(tensor)
    np.testing.assert_allclose(image.detach().numpy(), expected, atol=1e-5)
    image.sum().backward()
    assert float(tensor.grad.abs().sum()) > 0
    mu = hu_to_mu(torch.tensor([0.0, -1000.0]))
    assert mu.tolist() == pytest.approx([MU_WATER, 0.0])
