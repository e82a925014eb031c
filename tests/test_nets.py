import pytest
import torch

from spectra_lightning.nets import ConvAutoencoder, n_parameters


def test_full_size_network_shapes_and_parameter_count():
    net = ConvAutoencoder(327_680, 128, 15)
    assert n_parameters(net) == 7_046_997
    assert net.encoder.bottleneck == (512, 20)
    with torch.no_grad():
        recon, mu, logvar = net(torch.randn(1, 327_680))
    assert recon.shape == (1, 327_680) and mu.shape == (1, 128) and logvar.shape == (1, 128)


@pytest.mark.parametrize("n_pixels,depth", [(8192, 9), (512, 5), (1024, 2)])
def test_short_variants_roundtrip_shape(n_pixels, depth):
    net = ConvAutoencoder(n_pixels, 8, depth)
    recon, mu, _ = net(torch.randn(3, n_pixels), sample=True)
    assert recon.shape == (3, n_pixels) and mu.shape == (3, 8)


def test_length_not_divisible_is_rejected():
    with pytest.raises(ValueError, match="not divisible"):
        ConvAutoencoder(1000, 8, 5)
