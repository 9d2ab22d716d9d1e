package main

// addClientCommands adds `client ...` and `token ...`.
func addClientCommands(cmds map[string]command) {}
