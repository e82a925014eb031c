"""The label names data and model share: what the synthetic set draws and what a training run reports, in that
order (a store may hold more)."""

LABELS = ("rv", "teff", "logg", "feh", "vsini", "snr")
SHIFT_LABELS = ("wave_offset", "wave_stretch", "airmass")  # the synthetic set's, present only when their option is on

# what `analyze` reads by default: the labels above, a redshift, and the usual spellings of stellar parameters in
# label tables (a table's other numeric columns — mjd, ra, plate, coverage, raw_median ... — only when asked for)
PHYSICAL_LABELS = (*LABELS, *SHIFT_LABELS, "z", "mh", "m_h", "alpha", "alpha_fe", "vmic", "vmac", "age", "mass")
UNIT_SUFFIXES = ("_k", "_cgs", "_dex", "_kms", "_km_s")  # teff_K, logg_cgs, feh_dex, rv_kms


def is_physical(name: str) -> bool:
    """Is a label column a physical quantity (``teff``, ``Teff_K``, ``feh_dex`` …), not bookkeeping?"""
    base = name.strip().lower()
    for suffix in UNIT_SUFFIXES:
        base = base.removesuffix(suffix)
    return base in PHYSICAL_LABELS
