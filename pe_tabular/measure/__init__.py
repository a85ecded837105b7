"""DP estimation tools every wing uses (issue 25): written once here, in the engine, never in a wing.

Each module is small and imports no wing: ``schedule`` (the variation-degree schedule), ``information``
(mutual information of a released two-way table), ``spanning`` (a maximum spanning forest), ``raking``
(iterative proportional fitting of weights and of pair tables to released margins). Everything here is
post-processing of released values, except where a docstring says it reads private data.
"""
