package cvmsim

import (
	"cmp"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"
)

// MetadataPath is the base path of the CVM metadata service; a client's
// metadata URL is the server's URL plus MetadataPath.
const MetadataPath = "/latest/meta-data/"

// metadataRolePath is where the role name and its credentials are served.
const metadataRolePath = MetadataPath + "cam/security-credentials/"

// Defaults of MetadataConfig.
const (
	MetadataRoleDefault     = "fleetreset-sim-role"
	MetadataLifetimeDefault = time.Hour
)

// MetadataConfig configures a Metadata.
type MetadataConfig struct {
	// Role is the role name served. Defaults to MetadataRoleDefault.
	Role string
	// Lifetime of each credential issued, rounded down to whole seconds of
	// expiry as the service reports them. Defaults to MetadataLifetimeDefault.
	Lifetime time.Duration
}

// Metadata stands in for the role credentials of the CVM metadata service:
// an http.Handler answering GET /latest/meta-data/cam/security-credentials/
// with the role name and .../security-credentials/<role> with temporary
// credentials in the service's JSON (TmpSecretId, TmpSecretKey, Token,
// ExpiredTime, Expiration, Code). Every credential it issues is accepted by
// its Server until expiry (Server.AcceptCredentials). Like the real service
// it hands out new credentials once the current ones are past half their
// lifetime; Rotate issues new ones at once. It reads the Server's clock
// and is safe for concurrent use.
type Metadata struct {
	sim *Server
	cfg MetadataConfig

	mu     sync.Mutex
	cur    issuedCredential
	issued int
	served int
}

type issuedCredential struct {
	id, key, token string
	expires        time.Time
}

// NewMetadata returns a metadata service issuing credentials for sim.
func NewMetadata(sim *Server, cfg MetadataConfig) *Metadata {
	cfg.Role = cmp.Or(cfg.Role, MetadataRoleDefault)
	cfg.Lifetime = cmp.Or(cfg.Lifetime, MetadataLifetimeDefault)
	return &Metadata{sim: sim, cfg: cfg}
}

// Role returns the role name served.
func (m *Metadata) Role() string { return m.cfg.Role }

// Rotate issues new credentials now. The previous ones stay accepted for
// oldValidFor more (never past their own expiry); zero revokes them at once,
// as if they had expired early.
func (m *Metadata) Rotate(oldValidFor time.Duration) {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.sim.cfg.Clock.Now()
	if old := m.cur; old.id != "" {
		until := now.Add(oldValidFor)
		if old.expires.Before(until) {
			until = old.expires
		}
		m.sim.AcceptCredentials(old.id, old.key, old.token, until)
	}
	m.issueLocked(now)
}

// Issued returns how many credentials were issued so far.
func (m *Metadata) Issued() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.issued
}

// Served returns how many times credentials were answered.
func (m *Metadata) Served() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.served
}

// issueLocked makes and registers new credentials. Guarded by mu.
func (m *Metadata) issueLocked(now time.Time) {
	m.issued++
	exp := time.Unix(now.Add(m.cfg.Lifetime).Unix(), 0)
	m.cur = issuedCredential{
		id:      fmt.Sprintf("AKIDsimrole%04d%s", m.issued, rand.Text()[:8]),
		key:     rand.Text(),
		token:   rand.Text() + rand.Text(),
		expires: exp,
	}
	m.sim.AcceptCredentials(m.cur.id, m.cur.key, m.cur.token, exp)
}

// ServeHTTP answers the two metadata paths.
func (m *Metadata) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	switch rest, ok := strings.CutPrefix(r.URL.Path, metadataRolePath); {
	case !ok:
		http.NotFound(w, r)
	case rest == "":
		w.Header().Set("Content-Type", "text/plain")
		fmt.Fprint(w, m.cfg.Role)
	case rest != m.cfg.Role:
		http.NotFound(w, r)
	default:
		m.mu.Lock()
		now := m.sim.cfg.Clock.Now()
		if m.cur.id == "" || m.cur.expires.Sub(now) < m.cfg.Lifetime/2 {
			m.issueLocked(now)
		}
		c := m.cur
		m.served++
		m.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{
			"TmpSecretId":  c.id,
			"TmpSecretKey": c.key,
			"Token":        c.token,
			"ExpiredTime":  c.expires.Unix(),
			"Expiration":   c.expires.UTC().Format(time.RFC3339),
			"Code":         "Success",
		})
	}
}
