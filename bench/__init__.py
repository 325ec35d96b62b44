"""minibull's benchmarks against its peers: `make bench` (see bench/README.md)."""
