"""The physics data and model share: the wavelength grid (linear or logarithmic, air or vacuum, padding, masks),
exact flux-conserving rebinning, air/vacuum, the Doppler shift, line windows and the label names. numpy and torch
only."""
