"""The engine of reduce: Block and its registry, the Sequence (the frame loop, with the loader and
progress injected) and the executors. Imports only :mod:`reduce.model`; knows no astronomy."""
