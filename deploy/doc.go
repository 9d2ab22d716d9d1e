// Package deploy holds no code: its test checks the deployment files of the
// repository (docker-compose.yml with deploy/nats.conf) with a compose-spec
// parser, since no container engine runs where the tests do.
package deploy
