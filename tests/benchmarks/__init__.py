"""Throughput benchmarks against peers (TRL). Scripts here are named ``bench_*.py`` so pytest does not collect
them; run them by hand (see README.md in this folder)."""
