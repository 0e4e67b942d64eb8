"""Lightning strategies with this package's policies built in (see ``configs/strategies/``)."""
