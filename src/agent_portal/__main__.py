from agent_portal.cli import main

raise SystemExit(main())
