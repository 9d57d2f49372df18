from vfikit.cli import main

raise SystemExit(main())
