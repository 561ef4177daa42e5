from maillage_demo.cli import main

raise SystemExit(main())
