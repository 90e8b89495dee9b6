"""One module per CLI command. Modules import only click at load time; heavy work is
imported inside the command bodies."""
