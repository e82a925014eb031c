"""Reading trained models: encode a store, analyze codes against labels, sweeps, plots, codes stores, loggers."""
