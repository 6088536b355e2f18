"""Hardware backends behind typed protocols; only ``registry`` picks a concrete one."""
