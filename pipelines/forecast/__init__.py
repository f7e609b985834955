"""The forecast reference pipeline: daily store demand, regression on the GPU path."""
