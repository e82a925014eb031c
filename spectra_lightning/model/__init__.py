"""The model: networks (pure torch), reconstruction losses, KL schedules, the LightningModule that composes them,
parts (a spec builds only an allowed subclass), checkpoints (read as data) and their upgrades."""
