package rollout

// Account is where a rollout's calls go and whose API budget they spend:
// API generation, endpoint, region and credential identity, resolved once
// when the rollout is applied and stored with it. Every worker judges the
// rollout's ledger entries against the same Account, whatever flags it was
// started with.
type Account struct {
	API      string
	Endpoint string // "" is the real service
	Region   string
	Identity string // "" when the applying process had no credentials
}

// Account returns the rollout's account target.
func (s Spec) Account() Account {
	return Account{API: s.API, Endpoint: s.Endpoint, Region: s.Region, Identity: s.Identity}
}

// Serves says why a worker for the account `worker` (its --api, --endpoint
// and credential identity; empty fields match anything) must not serve a
// rollout of account a: "api", "endpoint" or "identity", or "" when it may.
func (a Account) Serves(worker Account) string {
	switch {
	case worker.API != "" && worker.API != a.API:
		return "api"
	case worker.Endpoint != "" && worker.Endpoint != a.Endpoint:
		return "endpoint"
	case a.Identity != "" && worker.Identity != "" && worker.Identity != a.Identity:
		return "identity"
	}
	return ""
}

// LimiterIdentity is the identity whose rate budget calls for this account
// spend: the stored one, else the calling worker's own.
func (a Account) LimiterIdentity(worker string) string {
	if a.Identity != "" {
		return a.Identity
	}
	return worker
}
