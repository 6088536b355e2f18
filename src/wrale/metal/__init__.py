"""metal: everything that runs on the board itself (hardware, safety loops, diagnostics)."""
