"""`python -m tokenomy`: the `tokenomy` command, for an environment whose scripts folder is not on PATH."""

from tokenomy.cli import main

main()
