"""``python -m asrkit`` (and ``torchrun --nproc-per-node N -m asrkit train ...``,
whose environment variables the trainer reads)."""
from asrkit.cli.main import main

if __name__ == "__main__":  # not when multiprocessing's spawn re-imports this module
    main()
