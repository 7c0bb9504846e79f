"""`python -m reversesync`: the command line."""

from .cli import main

if __name__ == "__main__":  # importing it (the wheel test imports every module) runs nothing
    main()
