package cli

import (
	"bufio"
	"maps"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/fleetreset/fleetreset/cvmsim"
	"github.com/fleetreset/fleetreset/planner"
	"gopkg.in/yaml.v3"
)

// No Docker engine runs where the tests do, so these tests read
// docker-compose.yml and the Dockerfile and check what `docker compose up`
// would run: real commands with valid flags, and services that point at
// each other on the right names and ports.

type composeFile struct {
	Services map[string]composeService `yaml:"services"`
	Volumes  map[string]any            `yaml:"volumes"`
}

type composeService struct {
	Image       string            `yaml:"image"`
	Build       any               `yaml:"build"`
	Command     []string          `yaml:"command"`
	Entrypoint  []string          `yaml:"entrypoint"`
	Environment map[string]string `yaml:"environment"`
	Ports       []string          `yaml:"ports"`
	Volumes     []string          `yaml:"volumes"`
	DependsOn   map[string]struct {
		Condition string `yaml:"condition"`
	} `yaml:"depends_on"`
	Profiles    []string `yaml:"profiles"`
	Healthcheck any      `yaml:"healthcheck"`
	PullPolicy  string   `yaml:"pull_policy"`
	Restart     string   `yaml:"restart"`
}

const composePath = "../../docker-compose.yml"

func loadCompose(t *testing.T) composeFile {
	t.Helper()
	b, err := os.ReadFile(composePath)
	if err != nil {
		t.Fatal(err)
	}
	var c composeFile
	if err := yaml.Unmarshal(b, &c); err != nil {
		t.Fatalf("%s: %v", composePath, err)
	}
	if len(c.Services) == 0 {
		t.Fatalf("%s has no services", composePath)
	}
	return c
}

// flagValue returns the value of --name in args ("--name v" or "--name=v").
func flagValue(args []string, name string) string {
	for i, a := range args {
		a = "-" + strings.TrimLeft(a, "-")
		if a == "-"+name && i+1 < len(args) {
			return args[i+1]
		}
		if v, ok := strings.CutPrefix(a, "-"+name+"="); ok {
			return v
		}
	}
	return ""
}

func hostPort(t *testing.T, what, hp string) (string, string) {
	t.Helper()
	h, p, err := net.SplitHostPort(hp)
	if err != nil {
		t.Fatalf("%s: %q is not host:port: %v", what, hp, err)
	}
	return h, p
}

func TestComposeFile(t *testing.T) {
	c := loadCompose(t)
	var redis, sim string
	var builders []string
	byCommand := map[string][]string{}
	for name, s := range c.Services {
		if strings.HasPrefix(s.Image, "redis:") {
			// The one Redis of the default stack; the sentinel profile's
			// replica and sentinels are checked by TestComposeSentinel.
			if len(s.Profiles) == 0 {
				redis = name
			}
			continue
		}
		if s.Image != "fleetreset:dev" || s.PullPolicy != "never" {
			t.Errorf("service %s: image %q, pull_policy %q; every fleetreset service runs image fleetreset:dev, built here, never pulled", name, s.Image, s.PullPolicy)
		}
		if s.Build != nil {
			builders = append(builders, name)
			if s.Build != "." {
				t.Errorf("service %s builds %v; want .", name, s.Build)
			}
		}
		if len(s.Entrypoint) > 0 {
			t.Errorf("service %s overrides the entrypoint; the image's is the fleetreset binary", name)
		}
		if err := ValidateArgs(s.Command); err != nil {
			t.Errorf("service %s runs `fleetreset %s`: %v", name, strings.Join(s.Command, " "), err)
			continue
		}
		byCommand[s.Command[0]] = append(byCommand[s.Command[0]], name)
		if s.Command[0] == "sim" {
			sim = name
		}
	}
	// The image is built once, not once per service.
	if len(builders) != 1 {
		t.Errorf("services %v build the image; want exactly one", builders)
	}
	// The simulator keeps its fleet in memory: a restart would reset every
	// instance's image and the demo would reset them again.
	if sim != "" && c.Services[sim].Restart != "no" {
		t.Errorf("service %s restarts (%q); the in-memory simulator must not", sim, c.Services[sim].Restart)
	}
	if redis == "" || sim == "" {
		t.Fatalf("want a redis service and a sim service; have %v", slices.Sorted(maps.Keys(c.Services)))
	}
	if n := len(byCommand["worker"]); n != 3 {
		t.Errorf("%d worker services (%v); want 3", n, byCommand["worker"])
	}
	if n := len(byCommand["ui"]); n != 1 {
		t.Errorf("%d ui services; want 1", n)
	}

	// Redis 7 with AOF persistence on a named volume.
	rs := c.Services[redis]
	if !strings.HasPrefix(rs.Image, "redis:7") {
		t.Errorf("redis image %q; want redis:7 (asynq needs Redis >= 6.2)", rs.Image)
	}
	if flagValue(rs.Command, "appendonly") != "yes" {
		t.Errorf("redis runs %q; want --appendonly yes", rs.Command)
	}
	redisPort := "6379"
	if p := flagValue(rs.Command, "port"); p != "" {
		redisPort = p
	}
	dataVolume := false
	for _, v := range rs.Volumes {
		if src, dst, _ := strings.Cut(v, ":"); dst == "/data" && c.Volumes != nil {
			if _, ok := c.Volumes[src]; ok {
				dataVolume = true
			}
		}
	}
	if !dataVolume {
		t.Errorf("redis volumes %q; want a named volume at /data so the AOF outlives the container", rs.Volumes)
	}
	if rs.Healthcheck == nil {
		t.Errorf("redis has no healthcheck; workers wait for it to be healthy")
	}

	// The simulator listens where the workers call it, with the
	// credentials the services carry.
	simArgs := c.Services[sim].Command
	simHost, simPort := hostPort(t, "sim --listen", flagValue(simArgs, "listen"))
	if simHost != "0.0.0.0" && simHost != "" {
		t.Errorf("sim listens on %s; other containers reach it only on 0.0.0.0", simHost)
	}
	if p := flagValue(simArgs, "plan"); p != "" {
		if _, err := planner.Load(filepath.Join("../..", p), planner.Options{}); err != nil {
			t.Errorf("sim --plan %s: %v", p, err)
		}
	}
	wantID, wantKey := cvmsim.SecretIDDefault, cvmsim.SecretKeyDefault
	if v := flagValue(simArgs, "secret-id"); v != "" {
		wantID = v
	}
	if v := flagValue(simArgs, "secret-key"); v != "" {
		wantKey = v
	}

	for name, s := range c.Services {
		if name == redis || name == sim || len(s.Command) == 0 || strings.HasPrefix(s.Image, "redis:") {
			continue
		}
		// Every command but sim needs Redis: the redis service, its port
		// (unless FLEETRESET_REDIS_URL points at the sentinels).
		u, err := url.Parse(composeDefault(s.Environment["REDIS_URL"]))
		if err != nil || u.Scheme != "redis" || u.Hostname() != redis || cmpPort(u.Port()) != redisPort {
			t.Errorf("service %s: REDIS_URL %q; want redis://%s:%s/0", name, s.Environment["REDIS_URL"], redis, redisPort)
		}
		if d, ok := s.DependsOn[redis]; !ok || d.Condition != "service_healthy" {
			t.Errorf("service %s does not wait for %s to be healthy", name, redis)
		}
		if s.Environment["TENCENTCLOUD_SECRET_ID"] != wantID || s.Environment["TENCENTCLOUD_SECRET_KEY"] != wantKey {
			t.Errorf("service %s: credentials do not match the simulator's", name)
		}
		switch s.Command[0] {
		case "worker":
			e, err := url.Parse(flagValue(s.Command, "endpoint"))
			if err != nil || e.Hostname() != sim || e.Port() != simPort {
				t.Errorf("worker %s --endpoint %q; want http://%s:%s", name, flagValue(s.Command, "endpoint"), sim, simPort)
			}
			if h, _ := hostPort(t, name+" --metrics-addr", flagValue(s.Command, "metrics-addr")); h != "0.0.0.0" {
				t.Errorf("worker %s serves metrics on %s; Prometheus in the network reaches only 0.0.0.0", name, h)
			}
		case "ui":
			h, p := hostPort(t, "ui --listen", flagValue(s.Command, "listen"))
			if h != "0.0.0.0" {
				t.Errorf("ui listens on %q inside its container; the published port reaches only 0.0.0.0", h)
			}
			if !slices.Contains(s.Ports, "127.0.0.1:"+p+":"+p) {
				t.Errorf("ui ports %q; want %q: published, and on the host's loopback only", s.Ports, "127.0.0.1:"+p+":"+p)
			}
		}
	}
}

// composeVar matches the one interpolation the compose file uses.
var composeVar = regexp.MustCompile(`^\$\{([A-Z_]+):-([^}]*)\}$`)

// composeDefault returns what compose puts for v with nothing set in the
// environment: the default of a ${VAR:-default}, else v.
func composeDefault(v string) string {
	if m := composeVar.FindStringSubmatch(v); m != nil {
		return m[2]
	}
	return v
}

// TestComposeSentinel checks the sentinel profile: a replica of the redis
// service, three sentinels watching it under one name with a majority
// quorum, and the REDIS_URL the header tells to set: a Sentinel URL of
// exactly those sentinels and that name, which every fleetreset service
// takes in place of the default.
func TestComposeSentinel(t *testing.T) {
	c := loadCompose(t)
	b, err := os.ReadFile(composePath)
	if err != nil {
		t.Fatal(err)
	}
	var primary, replica string
	sentinels := map[string]string{} // service -> its port
	var master, monitored string
	quorum := 0
	for name, s := range c.Services {
		if strings.HasPrefix(s.Image, "redis:") && len(s.Profiles) == 0 {
			primary = name
		}
	}
	for name, s := range c.Services {
		if !strings.HasPrefix(s.Image, "redis:") || len(s.Profiles) == 0 {
			continue
		}
		if !slices.Equal(s.Profiles, []string{"sentinel"}) {
			t.Errorf("service %s has profiles %v; want [sentinel]", name, s.Profiles)
		}
		cmdline := strings.Join(s.Command, " ")
		if m := regexp.MustCompile(`sentinel monitor (\S+) (\S+) (\d+) (\d+)`).FindStringSubmatch(cmdline); m != nil {
			if !strings.Contains(cmdline, "--sentinel") {
				t.Errorf("service %s has a sentinel configuration but does not run redis-server --sentinel", name)
			}
			port := "26379"
			if p := regexp.MustCompile(`port (\d+)`).FindStringSubmatch(cmdline); p != nil {
				port = p[1]
			}
			sentinels[name] = port
			if master != "" && (m[1] != master || m[2]+":"+m[3] != monitored) {
				t.Errorf("sentinel %s watches %s at %s:%s; another watches %s at %s", name, m[1], m[2], m[3], master, monitored)
			}
			master, monitored = m[1], m[2]+":"+m[3]
			quorum, _ = strconv.Atoi(m[4])
		} else if r := flagValue(s.Command, "replicaof"); r != "" {
			replica = name
			if i := slices.Index(s.Command, "--replicaof"); i+2 >= len(s.Command) || s.Command[i+1]+":"+s.Command[i+2] != primary+":6379" {
				t.Errorf("replica %s runs %q; want --replicaof %s 6379", name, s.Command, primary)
			}
			if flagValue(s.Command, "appendonly") != "yes" {
				t.Errorf("replica %s runs %q; want --appendonly yes: once promoted it is the primary", name, s.Command)
			}
		} else {
			t.Errorf("service %s in the sentinel profile is neither a replica nor a sentinel: %q", name, s.Command)
		}
	}
	if replica == "" || len(sentinels) != 3 {
		t.Fatalf("sentinel profile: replica %q, sentinels %v; want a replica and 3 sentinels", replica, sentinels)
	}
	if monitored != primary+":6379" {
		t.Errorf("the sentinels watch %s; want the redis service %s:6379", monitored, primary)
	}
	if quorum < 2 || quorum > len(sentinels) {
		t.Errorf("quorum %d; want a majority of the %d sentinels", quorum, len(sentinels))
	}

	// The header's command: the URL to set, with the profile on.
	m := regexp.MustCompile(`(?m)^#\s+FLEETRESET_REDIS_URL=(\S+) docker compose (.*)$`).FindSubmatch(b)
	if m == nil {
		t.Fatal("the compose file's header does not show FLEETRESET_REDIS_URL=... docker compose --profile sentinel up")
	}
	if !strings.Contains(string(m[2]), "--profile sentinel") {
		t.Errorf("the documented command %q does not enable the sentinel profile", m[2])
	}
	tg, err := parseRedisURL(string(m[1]), func(string) string { return "" })
	if err != nil || tg.failover == nil {
		t.Fatalf("FLEETRESET_REDIS_URL=%s: %v; want a Sentinel URL", m[1], err)
	}
	var want []string
	for name, port := range sentinels {
		want = append(want, name+":"+port)
	}
	slices.Sort(want)
	got := slices.Sorted(slices.Values(tg.failover.SentinelAddrs))
	if !slices.Equal(got, want) || tg.failover.MasterName != master {
		t.Errorf("FLEETRESET_REDIS_URL names sentinels %v and master %q; the profile runs %v watching %q", got, tg.failover.MasterName, want, master)
	}
	// Every fleetreset service takes it.
	for name, s := range c.Services {
		if s.Image != "fleetreset:dev" || len(s.Command) == 0 || s.Command[0] == "sim" {
			continue
		}
		if v := composeVar.FindStringSubmatch(s.Environment["REDIS_URL"]); v == nil || v[1] != "FLEETRESET_REDIS_URL" {
			t.Errorf("service %s: REDIS_URL %q; want ${FLEETRESET_REDIS_URL:-...} so that the sentinel profile reaches it", name, s.Environment["REDIS_URL"])
		}
	}
}

func cmpPort(p string) string {
	if p == "" {
		return "6379"
	}
	return p
}

// TestComposeDocumentedCommands checks the commands the compose file's
// header tells a new user to type.
func TestComposeDocumentedCommands(t *testing.T) {
	c := loadCompose(t)
	f, err := os.Open(composePath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	runRE := regexp.MustCompile(`docker compose run --rm (\S+) (.+)$`)
	n := 0
	for sc := bufio.NewScanner(f); sc.Scan(); {
		line := strings.TrimSpace(strings.TrimPrefix(sc.Text(), "#"))
		m := runRE.FindStringSubmatch(line)
		if m == nil || strings.Contains(m[2], "COMMAND") {
			continue
		}
		n++
		if _, ok := c.Services[m[1]]; !ok {
			t.Errorf("%q: no service %s", line, m[1])
			continue
		}
		args := strings.Fields(m[2])
		if err := ValidateArgs(args); err != nil {
			t.Errorf("%q: %v", line, err)
		}
		if args[0] == "apply" {
			if e := flagValue(args, "endpoint"); e != "" {
				for name, s := range c.Services {
					if len(s.Command) > 0 && s.Command[0] == "worker" && flagValue(s.Command, "endpoint") != e {
						t.Errorf("%q applies with --endpoint %s, worker %s calls %s", line, e, name, flagValue(s.Command, "endpoint"))
					}
				}
			}
			plan := args[len(args)-1]
			if _, err := os.Stat(filepath.Join("../..", plan)); err != nil {
				t.Errorf("%q: %v", line, err)
			}
		}
	}
	if n < 2 {
		t.Errorf("the compose file documents %d `docker compose run` commands; want the apply and the status", n)
	}
}

// TestDockerfile checks the build: the Go version of go.mod, a non-root
// runtime stage, the binary as entrypoint, and the plans the compose
// commands refer to.
func TestDockerfile(t *testing.T) {
	b, err := os.ReadFile("../../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	mod, err := os.ReadFile("../../go.mod")
	if err != nil {
		t.Fatal(err)
	}
	goVer := regexp.MustCompile(`(?m)^go (\d+\.\d+(?:\.\d+)?)`).FindSubmatch(mod)
	if goVer == nil {
		t.Fatal("go.mod has no go line")
	}
	var froms []string
	var user, workdir, entry string
	plansCopied := false
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 || strings.HasPrefix(f[0], "#") {
			continue
		}
		switch strings.ToUpper(f[0]) {
		case "FROM":
			froms = append(froms, f[1])
			user, workdir = "", "" // per stage
		case "USER":
			user = f[1]
		case "WORKDIR":
			workdir = f[1]
		case "ENTRYPOINT":
			entry = strings.Join(f[1:], " ")
		case "COPY":
			if len(f) == 3 && strings.TrimSuffix(f[1], "/") == "plans" {
				plansCopied = strings.TrimSuffix(f[2], "/") == strings.TrimSuffix(workdir, "/")+"/plans"
			}
		}
	}
	if len(froms) < 2 {
		t.Fatalf("Dockerfile has %d stages; want a build stage and a runtime stage", len(froms))
	}
	// Pinned to go.mod's toolchain: a build with another Go is not the one tested.
	if want := "golang:" + string(goVer[1]); froms[0] != want && !strings.HasPrefix(froms[0], want+"-") {
		t.Errorf("build stage FROM %s; go.mod wants Go %s (%s)", froms[0], goVer[1], want)
	}
	last := froms[len(froms)-1]
	if !strings.Contains(last, "distroless/static") && !strings.Contains(last, "debian") {
		t.Errorf("runtime stage FROM %s; want distroless/static or debian-slim", last)
	}
	if user == "" || user == "root" || strings.HasPrefix(user, "0") {
		t.Errorf("runtime stage USER %q; want a non-root user", user)
	}
	if !strings.Contains(entry, "fleetreset") {
		t.Errorf("ENTRYPOINT %s; want the fleetreset binary, which the compose commands assume", entry)
	}
	if !plansCopied {
		t.Errorf("the runtime stage does not copy plans/ into its WORKDIR %s; the compose commands use plans/demo.yaml", workdir)
	}
}
