"""``python -m watchdog run script.py args...``"""

import sys

from watchdog.cli import main

if __name__ == "__main__":
    sys.exit(main())
