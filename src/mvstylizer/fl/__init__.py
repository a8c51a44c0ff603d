"""Federated retraining of the edge model with Flower (see docs/FL.md).

:mod:`.local` is one edge's round of work (shared by the ClientApp and the baselines),
:mod:`.partitions` the non-IID simulated edges, :mod:`.flower` running Flower's processes.
The ServerApp, aggregation and the simulation experiment (:mod:`mvstylizer.cloud.simulate`) live in
:mod:`mvstylizer.cloud`, the ClientApp in :mod:`mvstylizer.edge.fl_client`.
"""
