"""Benchmark modules: each registers its benchmarks with `maillage_devstack.bench.benchmark`."""
