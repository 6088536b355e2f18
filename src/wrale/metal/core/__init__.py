"""metal.core: the board's safety loops, its sampler, metald's HTTP API and MetalClient.

Reaches hardware only through ``wrale.metal.hw.base`` protocols.
"""
