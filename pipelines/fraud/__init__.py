"""The reference fraud-detection pipeline."""
