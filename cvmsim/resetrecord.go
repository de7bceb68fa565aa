package cvmsim

import "slices"

// ResetExtras are the ResetInstance parameters beyond image and login
// that an accepted reset carried, for tests to check what a client sent.
type ResetExtras struct {
	// UserData is the decoded UserData; nil when none was sent.
	UserData []byte
	// AutomationService is EnhancedService.AutomationService.Enabled;
	// nil when not sent.
	AutomationService *bool
}

// LastReset returns the extras of the latest accepted reset of instance
// id; ok is false for an unknown instance. An instance never reset has
// zero extras.
func (s *Server) LastReset(id string) (ResetExtras, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	in, ok := s.instances[id]
	if !ok {
		return ResetExtras{}, false
	}
	e := in.lastReset
	e.UserData = slices.Clone(e.UserData)
	if e.AutomationService != nil {
		e.AutomationService = new(*e.AutomationService)
	}
	return e, true
}
