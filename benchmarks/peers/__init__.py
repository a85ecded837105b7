"""Peer mechanisms for the side-by-side benchmarks (our own code; each module cites its paper).

Run one method in its own process (``python -m benchmarks.peers.run_one``) so the benchmark can
measure its wall time, CPU time and peak memory with ``os.wait4``.
"""
