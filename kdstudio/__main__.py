"""`python -m kdstudio` is the `kdstudio` command."""

from kdstudio.cli import main

raise SystemExit(main())
