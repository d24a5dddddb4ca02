"""``python -m synthaug``: the ``synthaug`` command, for environments whose scripts folder is not on PATH."""

from synthaug.cli import main

if __name__ == "__main__":
    main(prog_name="synthaug")
