package main

// addPortalCommands adds `portal ...`.
func addPortalCommands(cmds map[string]command) {}
