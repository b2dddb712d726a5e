from pixelsmith.cli import main

raise SystemExit(main())
