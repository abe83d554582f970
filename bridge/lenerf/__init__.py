"""The LENeRF edit engine: add-on modules on a frozen tri-plane generator, their training and application."""
