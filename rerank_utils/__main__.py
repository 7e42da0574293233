import sys

from rerank_utils.cli.main import main

sys.exit(main())
