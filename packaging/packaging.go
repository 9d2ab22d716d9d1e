// Package packaging holds what the release packages install besides the
// binaries: the hardened systemd units, the commented config files, the
// maintainer scripts shared by .deb and .rpm, and the offline bundle's
// INSTALL.md. The release builder (cmd/isobox-dist) embeds them; the
// service binaries never import this package.
package packaging

import "embed"

// Files holds systemd/, etc/, scripts/ and INSTALL.md. Scripts carry the
// placeholder @SERVICE@ (authprovider or eventrelay).
//
//go:embed systemd etc scripts INSTALL.md
var Files embed.FS
