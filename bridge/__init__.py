"""The inference bridge: tri-plane fields, the embedded head prior, and (later) CLIP guidance,
the LENeRF edit engine and the HTTP server. Runs in its own process with PyTorch."""

__version__ = "0.1.0"
