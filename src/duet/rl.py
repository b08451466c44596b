"""`python -m duet.rl CONFIG` (or `torchrun ... -m duet.rl CONFIG`): RL fine-tuning, the same
as `duet rl CONFIG`. The code lives in `duet.train.rl`."""

from duet.train.rl.trainer import main

if __name__ == "__main__":
    raise SystemExit(main())
