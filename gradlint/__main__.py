"""`python -m gradlint`: the same as the `gradlint` command."""

from gradlint.cli import main

main()
