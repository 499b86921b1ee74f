import signal
import sys

from .run import main

# A stopped benchmark stops its servers too: start_site's clean-up runs on SystemExit.
signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
main()
