# Absolute import: Lightning's DDP launcher re-runs this file as a script in each child.
from spectra_lightning.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
