"""python -m worker.cli.main"""

from .main import main

raise SystemExit(main())
