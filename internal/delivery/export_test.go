package delivery

// Stopping is closed once Close has begun stopping the service (its
// context is cancelled), so a test can act in the window between an
// attempt and its settlement.
func (s *Service) Stopping() <-chan struct{} { return s.ctx.Done() }
