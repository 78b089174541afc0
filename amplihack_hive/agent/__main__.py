import sys

from amplihack_hive.agent.process import main

sys.exit(main())
