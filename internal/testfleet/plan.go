package testfleet

import (
	"cmp"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fleetreset/fleetreset/cvmsim"
)

// Plan is a test plan's YAML in parts. Each part is the YAML value of its
// key (e.g. Verify "{interval: 1s, timeout: 30m}"); an empty part is left
// out unless a default is named.
type Plan struct {
	// Name defaults to "test".
	Name string
	// Region defaults to ap-guangzhou.
	Region string
	// API defaults to v3.
	API      string
	Endpoint string
	// Image defaults to {id: cvmsim.ImageLinuxNew}.
	Image string
	// OS defaults to linux.
	OS             string
	Password       string
	KeepImageLogin bool
	RateLimit      string
	Verify         string
	Retry          string
	Waves          string
	FailureBudget  string
	Webhook        string
	// Extra is more top-level YAML, verbatim.
	Extra string
	// Group names the plan's one group; default "all".
	Group string
	// Instances are listed in the group; InstancesFile, when set instead,
	// names the file that lists them.
	Instances     []string
	InstancesFile string
}

// YAML returns the plan's text.
func (p Plan) YAML() string {
	var y strings.Builder
	y.Grow(256 + 16*len(p.Instances))
	fmt.Fprintf(&y, "version: 1\nname: %s\nregion: %s\napi: %s\n",
		cmp.Or(p.Name, "test"), cmp.Or(p.Region, "ap-guangzhou"), cmp.Or(p.API, "v3"))
	line := func(key, v string) {
		if v != "" {
			fmt.Fprintf(&y, "%s: %s\n", key, v)
		}
	}
	line("endpoint", p.Endpoint)
	line("image", cmp.Or(p.Image, "{id: "+cvmsim.ImageLinuxNew+"}"))
	line("os", cmp.Or(p.OS, cvmsim.OSLinux))
	line("password", p.Password)
	if p.KeepImageLogin {
		line("keepImageLogin", "true")
	}
	line("rateLimit", p.RateLimit)
	line("verify", p.Verify)
	line("retry", p.Retry)
	line("waves", p.Waves)
	line("failureBudget", p.FailureBudget)
	line("webhook", p.Webhook)
	if p.Extra != "" {
		y.WriteString(strings.TrimSuffix(p.Extra, "\n") + "\n")
	}
	fmt.Fprintf(&y, "groups:\n  - name: %s\n", cmp.Or(p.Group, "all"))
	if p.InstancesFile != "" {
		fmt.Fprintf(&y, "    instancesFile: %s\n", p.InstancesFile)
		return y.String()
	}
	y.WriteString("    instances:\n")
	for _, id := range p.Instances {
		fmt.Fprintf(&y, "      - %s\n", id)
	}
	return y.String()
}

// WritePlan writes p into dir as plan.yaml, with ids in instances.txt (its
// instancesFile) and password in pw.txt (its password file), the way an
// operator keeps a large fleet's plan; it returns the plan's path.
func WritePlan(tb testing.TB, dir string, p Plan, ids []string, password string) string {
	tb.Helper()
	p.InstancesFile, p.Instances, p.Password = "instances.txt", nil, "{file: pw.txt}"
	var list strings.Builder
	list.Grow(len(ids) * 13)
	for _, id := range ids {
		list.WriteString(id)
		list.WriteByte('\n')
	}
	path := filepath.Join(dir, "plan.yaml")
	for name, data := range map[string]string{"instances.txt": list.String(), "pw.txt": password + "\n", "plan.yaml": p.YAML()} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o600); err != nil {
			tb.Fatal(err)
		}
	}
	return path
}
