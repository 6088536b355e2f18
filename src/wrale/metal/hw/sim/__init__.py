"""metal/hw/sim."""
