"""``python -m amplihack_hive``: the same as the ``amplihack-hive`` console script."""

from amplihack_hive.cli import main

if __name__ == "__main__":
    main()
