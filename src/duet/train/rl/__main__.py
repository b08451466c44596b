"""`python -m duet.train.rl CONFIG` (or `torchrun ... -m duet.train.rl CONFIG`)."""

from duet.train.rl.trainer import main

raise SystemExit(main())
