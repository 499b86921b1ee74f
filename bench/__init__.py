"""The scale benchmark: the site with the simulator as provider, driven by simulated users over
real websockets on loopback. `python -m bench --help`; README.md and BENCHMARKS.md say more."""

import os

# tests.live builds daphne's command line from the site's settings.
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chatsite.settings")
