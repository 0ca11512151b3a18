"""The seeded workload simulator: a realistic month of AI customer-service traffic as raas events.

simulation = Simulation(SimConfig(seed=7, conversations=50_000))
for batch in simulation.batches():   # or .ndjson_batches() for the bytes a client sends
    ...
simulation.summary                   # what was generated, once every batch is consumed
"""

from raas.sim.config import ByDifficulty, ChannelShares, SimConfig, Tiering
from raas.sim.workload import SimSummary, Simulation, generate, generate_ndjson

__all__ = [
    "ByDifficulty",
    "ChannelShares",
    "SimConfig",
    "SimSummary",
    "Simulation",
    "Tiering",
    "generate",
    "generate_ndjson",
]
