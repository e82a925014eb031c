"""The names the command line is typed with (a module of its own: every part of the CLI reads them, and the
dispatcher must stay light to start)."""

PROG = "python -m spectra_lightning"
TRAINER_COMMANDS = ("fit", "validate", "test", "predict")
TENSOR_COMMANDS = (*TRAINER_COMMANDS, "encode")  # run networks: the allocator keeps their freed activations
