"""The brain's decisions (DESIGN.md §9): one pure module per loop, each a function from a
snapshot of the fleet to actions with their reasons. No I/O here; the services apply the
actions and write the decision log."""
