"""The label names data and model share: what the synthetic set draws and what a training run reports, in that
order (a store may hold more)."""

LABELS = ("rv", "teff", "logg", "feh", "vsini", "snr")
SHIFT_LABELS = ("wave_offset", "wave_stretch", "airmass")  # the synthetic set's, present only when their option is on
