"""metal/hw/linux."""
