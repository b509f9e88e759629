from sma.cli import main

raise SystemExit(main())
