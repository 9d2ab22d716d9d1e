package main

// addCLICommands adds the subcommands that talk to a running server's admin
// API: client and token (cli_client.go), portal (cli_portal.go).
func addCLICommands(cmds map[string]command) {
	addClientCommands(cmds)
	addPortalCommands(cmds)
}
