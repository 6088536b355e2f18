"""A simulated fleet in one process: N simulated boards, each with its metal core and edge
agent, laid out in rooms and racks, plus the demo's scripted incidents.

An entry-point layer (used by ``wrale sim``, ``wrale demo`` and the benchmarks): it wires
metal and the edge agent together and holds no domain logic of its own.
"""
