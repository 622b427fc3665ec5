import sys

from agentctx.cli import main

sys.exit(main())
