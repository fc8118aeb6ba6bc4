import sys

from vramdoc.cli import main

sys.exit(main())
