"""`python -m tui_gen` is the same as the `tui-gen` console script."""

from tui_gen.cli.dispatch import main

raise SystemExit(main())
