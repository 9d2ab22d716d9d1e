// Command eventrelay is isobox's event relay for an isolated Bitrix24 box: it
// takes REST events from the portal (or from authprovider's rest.event.call),
// stores them durably in NATS JetStream, delivers them to app and webhook
// handlers exactly as Bitrix does, with retries, dead letters and replay, and
// serves the local Push & Pull channel.
//
// With no arguments or with flags only it starts the relay on an embedded
// NATS server (data under ./data). Subcommands (deliveries, handlers, dlq,
// ...) talk to a running relay's admin API; `eventrelay help` lists them.
package main

import (
	"context"
	"io"

	"github.com/isobox/isobox/internal/cmdline"
)

// command is a subcommand of the eventrelay binary.
type command = cmdline.Command

func main() { cmdline.Main("eventrelay", run) }

// run runs the command named by args[0], or the server.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return cmdline.Program("eventrelay", "isobox's durable event relay and Push & Pull server for a boxed Bitrix24 portal", serve, commands())(ctx, args, stdout, stderr)
}

func commands() map[string]command {
	cmds := map[string]command{}
	addCLICommands(cmds)
	cmds["doctor"] = command{Summary: "check the installation (keys, TLS, NATS, authprovider, readiness, clock): one line per check, exit 1 on a problem", Run: doctorCmd}
	cmds["health"] = command{Summary: "exit 0 if the running service is ready (GET --url, default its admin /readyz): the container healthcheck", Run: healthCmd}
	return cmds
}
