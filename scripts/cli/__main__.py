import sys

from scripts.cli.commands import main

sys.exit(main())
