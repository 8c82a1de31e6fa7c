"""Benchmarks: throughput against same-run baselines, the routing simulator, locust load."""
