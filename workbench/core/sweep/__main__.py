import sys

from workbench.core.sweep.cli import main

sys.exit(main())
