"""Periodic work under advisory locks: the event tables' time partitions, ping retention,
funnel stats compaction and wallet upkeep, each a job that one runner
(:mod:`gateway.jobs.periodic`) runs in the background.
"""
