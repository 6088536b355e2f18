"""metal.diag: diagnostics over snapshots and active hardware tests, with a history."""
