"""Encode spectra you hold in memory with a trained model, and look at what it gives back (docs/api.md).

    python docs/examples/encode_spectra.py MODEL [OUTDIR]

MODEL: a run's checkpoint (RUN/checkpoints/last.ckpt), an exported model file, or its URL. The spectra here are
made up — absorption lines on a sampling finer than the model's grid, moved by a few velocities — to show that
any sampling goes in; use your own wavelength and flux arrays the same way.
"""

import sys
from pathlib import Path

import numpy as np

import spectra_lightning as sl

model = sl.load(sys.argv[1])
out_dir = Path(sys.argv[2] if len(sys.argv) > 2 else ".")
print(model)

# Five spectra of one star at five radial velocities, sampled every 0.3 Å across the model's band.
grid = model.grid
wave = np.arange(grid.wave_min, grid.wave_max, 0.3)
lines = np.linspace(grid.wave_min + 10, grid.wave_max - 10, 12)
velocities = np.array([-20.0, -10.0, 0.0, 10.0, 20.0])  # km/s
shifted = lines[None, :] * (1 + velocities[:, None] / 299_792.458)
flux = 1 - 0.5 * np.exp(-0.5 * ((wave[None, :, None] - shifted[:, None, :]) / 0.4) ** 2).sum(-1)

codes = model.encode(wave, flux)  # resampled onto the grid and normalised as ingest does
nodes = codes.informative if codes.informative is not None else list(range(model.latent_dim))
print(f"informative nodes: {nodes}")
for v, mu in zip(velocities, codes.mu[:, nodes]):
    print(f"  v = {v:+5.0f} km/s   mu = {np.array2string(mu, precision=3)}")

# Decode the codes back to spectra on the model's grid, and compare with what went in.
decoded = model.decode(codes.mu)
import matplotlib  # noqa: E402  (a headless backend, before pyplot)

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

fig, ax = plt.subplots(figsize=(8, 3))
on = codes.mask[0]
ax.plot(grid.wavelength[on], codes.flux[0][on], lw=0.8, label="input, on the grid")
ax.plot(grid.wavelength[on], decoded[0][on], lw=0.8, label="decoded from its code")
ax.set(xlabel="wavelength (Å)", ylabel="flux / median")
ax.legend()
fig.tight_layout()
fig.savefig(out_dir / "decoded.png", dpi=100)
print(f"wrote {out_dir / 'decoded.png'}")
