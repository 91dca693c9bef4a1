"""One training run: ``train(cfg)``, the LightningModule, the Trainer and the callbacks it runs with."""
