package main

// addCLICommands adds the subcommands that talk to a running relay's admin API.
func addCLICommands(cmds map[string]command) {
}
