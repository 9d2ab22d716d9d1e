package main

// addCLICommands adds the subcommands that talk to a running server's admin
// API (client, token, portal, ...).
func addCLICommands(cmds map[string]command) {
}
