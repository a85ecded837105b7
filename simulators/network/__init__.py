"""Network traces: a parametric flow/packet simulator backend, pcap and NetFlow I/O, and the
``pe-tabular traces`` commands."""

from simulators.network.flows import FlowSimulator, flow_validity, render, repair

__all__ = ["FlowSimulator", "flow_validity", "render", "repair"]
