"""Engine of reduce: blocks, sequences, errors and flags (knows no astronomy)."""
