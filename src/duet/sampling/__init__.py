"""Sampling: sigma schedules, flow-matching solvers, guidance and the joint loop."""
