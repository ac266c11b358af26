"""Periodic work under advisory locks: ping retention, funnel stats compaction and wallet
upkeep, each a job that one runner (:mod:`gateway.jobs.periodic`) runs in the background.
"""
