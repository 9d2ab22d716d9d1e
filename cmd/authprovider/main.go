// Command authprovider is isobox's OAuth 2.0 server for an isolated Bitrix24
// box: it mints and checks the tokens REST apps use, speaks the portal's
// OAuth-server protocol in place of oauth.bitrix.info, and serves the admin
// and validation APIs over gRPC with a REST face.
//
// With no arguments or with flags only it serves on embedded defaults (data
// under ./data). Subcommands (client, token, portal, ...) talk to a running
// server's admin API or its database; `authprovider help` lists them.
package main

import (
	"context"
	"io"

	"github.com/isobox/isobox/internal/cmdline"
)

// command is a subcommand of the authprovider binary.
type command = cmdline.Command

func main() { cmdline.Main("authprovider", run) }

// run runs the command named by args[0], or the server.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return cmdline.Program("authprovider", "isobox's OAuth 2.0 server for a boxed Bitrix24 portal", serve, commands())(ctx, args, stdout, stderr)
}

func commands() map[string]command {
	cmds := map[string]command{}
	addCLICommands(cmds)
	cmds["doctor"] = command{Summary: "check the installation (database, keys, TLS, the other service, registration, clock): one line per check, exit 1 on a problem", Run: doctorCmd}
	cmds["health"] = command{Summary: "exit 0 if the running service is ready (GET --url, default its admin /readyz): the container healthcheck", Run: healthCmd}
	return cmds
}
