from schemagate.cli import main

raise SystemExit(main())
