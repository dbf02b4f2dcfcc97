from appliance.provision.main import main

raise SystemExit(main())
