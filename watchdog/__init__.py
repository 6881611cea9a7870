"""watchdog: a runtime watchdog for PyTorch training loops."""
