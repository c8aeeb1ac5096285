from cni_sysctl.cli import main

raise SystemExit(main())
