"""`python -m duet ...`: the `duet` command."""

from duet.cli import main

raise SystemExit(main())
