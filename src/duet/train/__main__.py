"""`python -m duet.train CONFIG` (or `torchrun ... -m duet.train CONFIG`)."""

from duet.train.trainer import main

raise SystemExit(main())
