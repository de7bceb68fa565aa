package cvmsim

import (
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestInstanceFacts checks names and addresses in both generations.
func TestInstanceFacts(t *testing.T) {
	named := linuxB
	named.Name = "web-1"
	for _, port := range []int{0, 18081} {
		t.Run("health_port_"+strconv.Itoa(port), func(t *testing.T) {
			b := setup(t, Config{HealthPort: port}, linuxA, named)
			var v3 struct {
				InstanceSet []struct {
					InstanceId, InstanceName              string
					PrivateIpAddresses, PublicIpAddresses []string
				}
			}
			b.c.mustSvc("cvm", "DescribeInstances", map[string]any{}, &v3)
			a := b.c.v2(http.MethodGet, "DescribeInstances", nil)
			var v2 struct {
				InstanceSet []struct {
					InstanceName string   `json:"instanceName"`
					LanIP        string   `json:"lanIp"`
					WanIPSet     []string `json:"wanIpSet"`
				} `json:"instanceSet"`
			}
			_, body := b.c.sendV1(http.MethodGet, PathV2, b.c.v1Params("DescribeInstances", nil))
			if err := jsonUnmarshal(body, &v2); err != nil || *a.Code != 0 {
				t.Fatalf("v2 DescribeInstances: %v %s", err, body)
			}
			for i, want := range []string{"sim-" + linuxA.ID, "web-1"} {
				got3, got2 := v3.InstanceSet[i], v2.InstanceSet[i]
				view, _ := b.srv.Instance(got3.InstanceId)
				if got3.InstanceName != want || got2.InstanceName != want {
					t.Errorf("names = %q, %q; want %q", got3.InstanceName, got2.InstanceName, want)
				}
				if len(got3.PrivateIpAddresses) != 1 || got3.PrivateIpAddresses[0] != got2.LanIP || got2.LanIP != view.PrivateIP {
					t.Errorf("private IPs v3 %v, v2 %s, view %s differ", got3.PrivateIpAddresses, got2.LanIP, view.PrivateIP)
				}
				if len(got3.PublicIpAddresses) != 1 || len(got2.WanIPSet) != 1 || got3.PublicIpAddresses[0] != got2.WanIPSet[0] || net.ParseIP(got2.WanIPSet[0]) == nil {
					t.Errorf("public IPs v3 %v, v2 %v", got3.PublicIpAddresses, got2.WanIPSet)
				}
				wantPrefix := "10."
				if port != 0 {
					wantPrefix = "127.1.0." + strconv.Itoa(i+1)
				}
				if !strings.HasPrefix(got2.LanIP, wantPrefix) {
					t.Errorf("private IP %s; want %s...", got2.LanIP, wantPrefix)
				}
			}
		})
	}
}

func TestLoopbackIP(t *testing.T) {
	for _, tt := range []struct {
		index int
		want  string
	}{{0, "127.1.0.1"}, {254, "127.1.0.255"}, {255, "127.1.1.0"}, {65534, "127.1.255.255"}, {65535, "127.2.0.0"}} {
		if got := loopbackIP(tt.index); got != tt.want {
			t.Errorf("loopbackIP(%d) = %s; want %s", tt.index, got, tt.want)
		}
	}
}

// healthGet fetches url on a fresh connection; err is the transport error.
func healthGet(url string) (status int, body string, err error) {
	tr := &http.Transport{DisableKeepAlives: true}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr, Timeout: 5 * time.Second}).Get(url)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), nil
}

// awaitHealth polls url until it answers status (0: until the connection
// is refused), failing after a deadline.
func awaitHealth(t *testing.T, url string, status int, body string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		got, gotBody, err := healthGet(url)
		switch {
		case status == 0 && errors.Is(err, syscall.ECONNREFUSED):
			return
		case status != 0 && err == nil && got == status && strings.Contains(gotBody, body):
			return
		case time.Now().After(deadline):
			t.Fatalf("GET %s = %d %q, %v; want %d %q", url, got, gotBody, err, status, body)
		}
		time.Sleep(5 * time.Millisecond) // polling in a deadline loop
	}
}

// startHealth sets up a simulator with health endpoints on a free port.
func startHealth(t *testing.T, cfg Config, ins ...Instance) *testBundle {
	t.Helper()
	cfg.HealthPort = -1
	b := setup(t, cfg, ins...)
	if err := b.srv.Start(); err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() { b.srv.Close() })
	return b
}

// TestHealthAcrossReset follows an endpoint through a reinstall: open and
// healthy, refused while reinstalling (a kept-alive connection dropped
// too), open again on the new image, 503 when it comes back unhealthy.
func TestHealthAcrossReset(t *testing.T) {
	b := startHealth(t, Config{ResetDuration: 10 * time.Second, Faults: Faults{UnhealthyIDs: []string{linuxB.ID}}}, linuxA, linuxB, stoppedC)
	urlA, urlB := b.srv.HealthURL(linuxA.ID), b.srv.HealthURL(linuxB.ID)
	if !strings.HasPrefix(urlA, "http://127.1.0.1:") || !strings.HasSuffix(urlA, HealthPath) {
		t.Fatalf("HealthURL = %s", urlA)
	}
	awaitHealth(t, urlA, http.StatusOK, "ok "+ImageLinuxOld)
	awaitHealth(t, b.srv.HealthURL(stoppedC.ID), 0, "") // a stopped instance does not listen

	// A kept-alive connection, to see it dropped by the reinstall.
	keep := &http.Client{Transport: &http.Transport{}}
	defer keep.CloseIdleConnections()
	resp, err := keep.Get(urlA)
	if err != nil {
		t.Fatal(err)
	}
	io.ReadAll(resp.Body)
	resp.Body.Close()

	for _, id := range []string{linuxA.ID, linuxB.ID} {
		wantCode(t, b.c.reset(genTC3, id, map[string]string{"ImageId": ImageLinuxNew}), "")
	}
	if up, _ := b.srv.Health(linuxA.ID); up {
		t.Fatal("Health: up during the reinstall")
	}
	awaitHealth(t, urlA, 0, "")
	if resp, err := keep.Get(urlA); err == nil {
		resp.Body.Close()
		t.Fatalf("kept-alive connection answered %d during the reinstall", resp.StatusCode)
	}

	b.clk.Advance(10 * time.Second) // the loop reopens without a request reading state
	awaitHealth(t, urlA, http.StatusOK, "ok "+ImageLinuxNew)
	awaitHealth(t, urlB, http.StatusServiceUnavailable, "")
	if up, healthy := b.srv.Health(linuxB.ID); !up || healthy {
		t.Fatalf("Health(B) = %v, %v; want up, unhealthy", up, healthy)
	}
	b.srv.SetHealthy(linuxB.ID, true)
	awaitHealth(t, urlB, http.StatusOK, "ok "+ImageLinuxNew)

	// Admin switch, then Close shuts every endpoint.
	resp, err = http.Post(b.hs.URL+PathAdminHealthy+"?id="+linuxA.ID+"&ok=false", "", nil)
	if err != nil || resp.StatusCode != http.StatusNoContent {
		t.Fatalf("POST %s = %v, %v", PathAdminHealthy, resp, err)
	}
	resp.Body.Close()
	awaitHealth(t, urlA, http.StatusServiceUnavailable, "")
	if status, _, err := healthGet(strings.TrimSuffix(urlA, HealthPath) + "/other"); err != nil || status != http.StatusNotFound {
		t.Fatalf("GET /other = %d, %v; want 404", status, err)
	}
	b.srv.Close()
	awaitHealth(t, urlA, 0, "")
	awaitHealth(t, urlB, 0, "")
	if err := b.srv.Start(); !errors.Is(err, ErrClosed) {
		t.Fatalf("Start after Close = %v; want ErrClosed", err)
	}
}

// TestUnhealthyRate checks the dice: rate 1 makes every reinstall end
// unhealthy, and the rate is drawn after FailRate so a zero rate draws nothing.
func TestUnhealthyRate(t *testing.T) {
	b := setup(t, Config{ResetDuration: time.Second, Faults: Faults{UnhealthyRate: 1}}, linuxA)
	if _, healthy := b.srv.Health(linuxA.ID); !healthy {
		t.Fatal("healthy before any reset")
	}
	wantCode(t, b.c.reset(genTC3, linuxA.ID, nil), "")
	b.clk.Advance(time.Second)
	if up, healthy := b.srv.Health(linuxA.ID); !up || healthy {
		t.Fatalf("Health = %v, %v; want up, unhealthy", up, healthy)
	}
}

// TestStartPortTaken checks that Start reports a port it cannot bind and
// leaves nothing open.
func TestStartPortTaken(t *testing.T) {
	ln, err := net.Listen("tcp", loopbackIP(1)+":0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	port := ln.Addr().(*net.TCPAddr).Port
	b := setup(t, Config{HealthPort: port}, linuxA, linuxB)
	err = b.srv.Start()
	if err == nil || !strings.Contains(err.Error(), linuxB.ID) {
		t.Fatalf("Start = %v; want an error naming %s", err, linuxB.ID)
	}
	awaitHealth(t, b.srv.HealthURL(linuxA.ID), 0, "")
	b.srv.Close()
	// Off: Start does nothing.
	if err := setup(t, Config{}, linuxA).srv.Start(); err != nil {
		t.Fatalf("Start without HealthPort = %v", err)
	}
}

// TestMaxConcurrentResets checks the overall and per-zone maxima.
func TestMaxConcurrentResets(t *testing.T) {
	other := windowsD // zone 3 like linuxA
	b := setup(t, Config{ResetDuration: 10 * time.Second}, linuxA, linuxB, other)
	wantCode(t, b.c.reset(genTC3, linuxA.ID, nil), "")
	wantCode(t, b.c.reset(genTC3, other.ID, nil), "")
	b.clk.Advance(5 * time.Second)
	wantCode(t, b.c.reset(genTC3, linuxB.ID, nil), "")
	b.clk.Advance(6 * time.Second) // A and D done, B running
	wantCode(t, b.c.reset(genTC3, linuxA.ID, nil), "")
	st := b.srv.Stats()
	if st.MaxConcurrentResets != 3 {
		t.Errorf("MaxConcurrentResets = %d; want 3", st.MaxConcurrentResets)
	}
	if got := st.MaxConcurrentResetsPerZone; got["ap-guangzhou-3"] != 2 || got["ap-guangzhou-4"] != 1 {
		t.Errorf("MaxConcurrentResetsPerZone = %v; want zone 3: 2, zone 4: 1", got)
	}
}
