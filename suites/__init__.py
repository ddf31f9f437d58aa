"""Suites: YAML manifests of seed x env x method grids, executors, tracking, tuning."""
