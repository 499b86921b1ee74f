"""The scale benchmark: the site with the simulator as provider, driven by simulated users over
real websockets on loopback. `python -m bench --help`; README.md and BENCHMARKS.md say more."""
