package delivery

// Stopping is closed once Close has begun stopping the service (its
// context is cancelled), so a test can act in the window between an
// attempt and its settlement.
func (s *Service) Stopping() <-chan struct{} { return s.ctx.Done() }

// RecordsChanged returns a channel closed on the next change of a delivery
// record, so tests wait for records without polling.
func (s *Service) RecordsChanged() <-chan struct{} { return s.records.changes() }
