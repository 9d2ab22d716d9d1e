package main

import "context"

// mountPush adds the Push & Pull channel: subscribers on --http-addr,
// publishing on --publish-addr.
func mountPush(ctx context.Context, a *app) error {
	return nil
}
