package cvmsim

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math/bits"
	"regexp"
	"strings"
	"time"
)

// Instance is a simulated CVM instance as it is added to the simulator.
type Instance struct {
	// ID is the unified instance ID, "ins-" and 8 lower-case letters or digits.
	ID string `json:"instance_id"`
	// Zone is the availability zone, e.g. ap-guangzhou-3.
	Zone string `json:"zone"`
	// Region is where the instance lives, Config.Region when empty; a
	// request for another region does not see it.
	Region string `json:"region,omitempty"`
	// ImageID is the current image, "img-" and 8 lower-case letters or digits.
	ImageID string `json:"image_id"`
	// OS is "linux" or "windows"; it selects the password and key rules.
	OS string `json:"os"`
	// State is "RUNNING" or "STOPPED"; a reinstall returns to it.
	State string `json:"state"`
	// Name is the instance name DescribeInstances reports.
	// Defaults to "sim-" + ID.
	Name string `json:"name,omitempty"`
	// Tags are the instance's tags, which DescribeInstances reports and
	// its tag filters match. Optional.
	Tags map[string]string `json:"tags,omitempty"`
	// VpcID and SubnetID place the instance in a VPC (vpc-id and
	// subnet-id filters); ProjectID is its project (project-id, default
	// 0) and ChargeType its InstanceChargeType (instance-charge-type),
	// ChargeTypeDefault when empty. All optional.
	VpcID      string `json:"vpc_id,omitempty"`
	SubnetID   string `json:"subnet_id,omitempty"`
	ProjectID  int    `json:"project_id,omitempty"`
	ChargeType string `json:"charge_type,omitempty"`
}

// OS and State values of Instance.
const (
	OSLinux      = "linux"
	OSWindows    = "windows"
	StateRunning = "RUNNING"
	StateStopped = "STOPPED"
)

// LatestOperationState values, as API 3.0 reports them.
const (
	OperationOperating = "OPERATING"
	OperationSuccess   = "SUCCESS"
	OperationFailed    = "FAILED"
)

// Legacy v2 status codes the simulator reports (§2.5 of the reference).
const (
	V2StatusRunning      = 2
	V2StatusStopped      = 4
	V2StatusReinstalling = 14
)

// Images used by Generate: instances start on the "old" image of their OS;
// the "new" ones are convenient reset targets for demos and tests.
const (
	ImageLinuxOld   = "img-lnxold01"
	ImageWindowsOld = "img-winold01"
	ImageLinuxNew   = "img-lnxnew01"
	ImageWindowsNew = "img-winnew01"
)

// InstanceView is an instance as the simulator sees it now, with its latest
// operation; it is what /admin/instances lists.
type InstanceView struct {
	Instance
	// OSName is what DescribeInstances reports as OsName (v3) or os (v2).
	OSName string `json:"os_name"`
	// V2Status is the legacy status: 2 running, 4 stopped, 14 reinstalling.
	V2Status int `json:"v2_status"`
	// LatestOperation is "ResetInstance" once a reset was accepted.
	LatestOperation string `json:"latest_operation,omitempty"`
	// LatestOperationState is OPERATING, SUCCESS or FAILED.
	LatestOperationState string `json:"latest_operation_state,omitempty"`
	// LatestOperationRequestID is the RequestId (v2 requestId) of the
	// accepted reset.
	LatestOperationRequestID string `json:"latest_operation_request_id,omitempty"`
	// LatestOperationErrorMsg explains a FAILED operation.
	LatestOperationErrorMsg string `json:"latest_operation_error_msg,omitempty"`
	// OperationEndsAt is when the current or latest operation ends (ended).
	OperationEndsAt time.Time `json:"operation_ends_at,omitzero"`
	// AcceptedResets counts accepted resets of this instance.
	AcceptedResets int `json:"accepted_resets"`
	// PrivateIP and PublicIP are the addresses DescribeInstances reports;
	// with Config.HealthPort the private one is a loopback address of the
	// instance's own where its health endpoint listens.
	PrivateIP string `json:"private_ip"`
	PublicIP  string `json:"public_ip"`
	// Up is true while the instance is RUNNING and not reinstalling: its
	// health endpoint accepts connections and its TAT agent is online.
	Up bool `json:"up"`
	// Healthy is what its health endpoint and the CLB report while it is up.
	Healthy bool `json:"healthy"`
}

// instance is the simulator's mutable state of one instance. Guarded by
// Server.mu.
type instance struct {
	Instance
	legacyID string // v2 "instanceId", qcvm + 32 hex
	lanIP    string // private IP: 10.x.y.z, or 127.1.x.y with health endpoints
	wanIP    string // public IP
	index    int    // position among the instances, for the loopback IP
	healthy  bool   // health endpoint answers 200 (else 503) while up

	opName, opState, opRequestID, opErrMsg string
	opEnds                                 time.Time
	opTarget                               string // image after success
	opFails                                bool   // decided at acceptance, so runs repeat
	opUnhealthy                            bool   // unhealthy after success, decided at acceptance too

	accepted  int         // accepted resets
	lastReset ResetExtras // of the latest accepted reset
	busyCalls int         // calls answered SystemBusy by SystemBusyFirst
}

func newInstance(in Instance) *instance {
	sum := sha256.Sum256([]byte(in.ID))
	return &instance{
		Instance: in,
		legacyID: "qcvm" + hex.EncodeToString(sum[:16]),
		lanIP:    fmt.Sprintf("10.%d.%d.%d", sum[16], sum[17], sum[18]|1),
		// 43.x is a Tencent Cloud public range; the address is never dialled.
		wanIP:   fmt.Sprintf("43.%d.%d.%d", sum[19], sum[20], sum[21]|1),
		healthy: true,
	}
}

// name is the instance name reported.
func (in *instance) name() string {
	if in.Name != "" {
		return in.Name
	}
	return "sim-" + in.ID
}

// up reports whether the instance serves: RUNNING and not reinstalling.
func (in *instance) up() bool { return in.State == StateRunning && !in.operating() }

// settle completes the operation if its time has come; state is evaluated
// lazily from the clock instead of by timers. It reports how it ended.
func (in *instance) settle(now time.Time) (ended string) {
	if in.opState != OperationOperating || now.Before(in.opEnds) {
		return ""
	}
	if in.opFails {
		in.opState = OperationFailed
		in.opErrMsg = "simulated reinstall failure (Faults.FailRate or FailIDs): the system disk was not changed"
	} else {
		in.opState = OperationSuccess
		in.ImageID = in.opTarget
		in.healthy = !in.opUnhealthy
	}
	return in.opState
}

func (in *instance) operating() bool { return in.opState == OperationOperating }

func (in *instance) v2Status() int {
	switch {
	case in.operating():
		return V2StatusReinstalling
	case in.State == StateStopped:
		return V2StatusStopped
	default:
		return V2StatusRunning
	}
}

// osName is a plausible OsName; it starts with "Windows" for Windows so a
// client may tell the OS apart. It does not follow image changes.
func (in *instance) osName() string {
	if in.OS == OSWindows {
		return "Windows Server 2019 DataCenter 64bit"
	}
	return "TencentOS Server 3.1 (TK4)"
}

func (in *instance) view() InstanceView {
	return InstanceView{
		Instance:                 in.Instance,
		OSName:                   in.osName(),
		V2Status:                 in.v2Status(),
		LatestOperation:          in.opName,
		LatestOperationState:     in.opState,
		LatestOperationRequestID: in.opRequestID,
		LatestOperationErrorMsg:  in.opErrMsg,
		OperationEndsAt:          in.opEnds,
		AcceptedResets:           in.accepted,
		PrivateIP:                in.lanIP,
		PublicIP:                 in.wanIP,
		Up:                       in.up(),
		Healthy:                  in.healthy,
	}
}

var (
	instanceIDRe = regexp.MustCompile(`^ins-[0-9a-z]{8}$`)
	legacyIDRe   = regexp.MustCompile(`^qcvm[0-9a-f]{32}$`)
	imageIDRe    = regexp.MustCompile(`^img-[0-9a-z]{8}$`)
	keyIDRe      = regexp.MustCompile(`^skey-[0-9a-z]{8}$`)
)

func validInstanceID(id string) bool { return instanceIDRe.MatchString(id) }

func validImageID(id string) bool { return imageIDRe.MatchString(id) }

func (in Instance) validate() error {
	if !validInstanceID(in.ID) {
		return fmt.Errorf("cvmsim: instance ID %q is not ins- followed by 8 lower-case letters or digits", in.ID)
	}
	if !validImageID(in.ImageID) {
		return fmt.Errorf("cvmsim: instance %s: image ID %q is not img- followed by 8 lower-case letters or digits", in.ID, in.ImageID)
	}
	if in.OS != OSLinux && in.OS != OSWindows {
		return fmt.Errorf("cvmsim: instance %s: OS %q is not %q or %q", in.ID, in.OS, OSLinux, OSWindows)
	}
	if in.State != StateRunning && in.State != StateStopped {
		return fmt.Errorf("cvmsim: instance %s: State %q is not %q or %q", in.ID, in.State, StateRunning, StateStopped)
	}
	return nil
}

// Generate returns n instances derived from SeedDefault; see GenerateSeed.
func Generate(n int) []Instance { return GenerateSeed(n, SeedDefault) }

// generatedZones are the zones Generate spreads instances over.
var generatedZones = []string{"ap-guangzhou-3", "ap-guangzhou-4", "ap-guangzhou-6"}

// idSpace is the number of distinct 8-character lower-case alphanumeric suffixes.
const idSpace = 2821109907456 // 36^8

// GenerateSeed returns n instances whose IDs and attributes are a pure
// function of seed and position: GenerateSeed(5, s) is a prefix of
// GenerateSeed(10, s), and IDs never repeat. About 80% are Linux and 20%
// Windows, spread over ap-guangzhou-3/4/6, about 10% STOPPED, each on the
// ImageLinuxOld or ImageWindowsOld image. Each has a role tag (web, db or
// cache) and an env tag (prod or staging), a VPC per env and a subnet per
// env and zone, and about 30% are PREPAID and 25% in project 1001.
func GenerateSeed(n int, seed int64) []Instance {
	// i*mult+offset mod 36^8 is a bijection because mult shares no factor
	// (2 or 3) with 36^8, so IDs are unique without a collision check.
	const mult = 2654435761
	offset := splitmix(uint64(seed)) % idSpace
	out := make([]Instance, n)
	for i := range out {
		hi, lo := bits.Mul64(uint64(i), mult)
		num := (bits.Rem64(hi, lo, idSpace) + offset) % idSpace
		h := splitmix(uint64(seed) ^ splitmix(uint64(i)+1))
		in := Instance{
			ID:      "ins-" + base36(num),
			Zone:    generatedZones[(h>>8)%uint64(len(generatedZones))],
			OS:      OSLinux,
			ImageID: ImageLinuxOld,
			State:   StateRunning,
		}
		if h%10 < 2 {
			in.OS, in.ImageID = OSWindows, ImageWindowsOld
		}
		if (h>>16)%10 == 0 {
			in.State = StateStopped
		}
		generatedAttrs(&in, h)
		out[i] = in
	}
	return out
}

// splitmix is the SplitMix64 finaliser, a cheap well-mixed hash.
func splitmix(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

// base36 renders n < 36^8 as exactly 8 lower-case base-36 digits.
func base36(n uint64) string {
	const digits = "0123456789abcdefghijklmnopqrstuvwxyz"
	var b [8]byte
	for i := 7; i >= 0; i-- {
		b[i] = digits[n%36]
		n /= 36
	}
	return string(b[:])
}

// passwordSpecials is the documented special-character set S (§5).
const passwordSpecials = "()`~!@#$%^&*-+=|{}[]:;',.?/"

// validPassword applies the documented rules of gen to a password for an
// instance running os (§5 of the reference):
//   - v2 Linux: 8–16 chars, 2 of 3 classes (letters, digits, S).
//   - v2 Windows: 12–16 chars, 3 of 4 classes (lower, upper, digits, S
//     without "|").
//   - v3 Linux: 8–30 chars, 2 of 4 classes (lower, upper, digits, S).
//   - v3 Windows: 12–30 chars, 3 of the same 4 classes.
//
// Any character outside these classes (space, non-ASCII) is refused.
func validPassword(gen generation, os, pw string) bool {
	var lower, upper, digit, special bool
	for _, r := range pw {
		switch {
		case r >= 'a' && r <= 'z':
			lower = true
		case r >= 'A' && r <= 'Z':
			upper = true
		case r >= '0' && r <= '9':
			digit = true
		case r == '|' && gen == genV2 && os == OSWindows:
			return false // the v2 Windows set leaves out the pipe
		case strings.ContainsRune(passwordSpecials, r):
			special = true
		default:
			return false
		}
	}
	count := func(classes ...bool) int {
		n := 0
		for _, c := range classes {
			if c {
				n++
			}
		}
		return n
	}
	n := len(pw) // all accepted characters are ASCII
	switch {
	case gen == genV2 && os == OSLinux:
		return n >= 8 && n <= 16 && count(lower || upper, digit, special) >= 2
	case gen == genV2:
		return n >= 12 && n <= 16 && count(lower, upper, digit, special) >= 3
	case os == OSLinux:
		return n >= 8 && n <= 30 && count(lower, upper, digit, special) >= 2
	default:
		return n >= 12 && n <= 30 && count(lower, upper, digit, special) >= 3
	}
}

var hostLabelRe = regexp.MustCompile(`^[A-Za-z0-9]+(-[A-Za-z0-9]+)*$`)

// validHostName applies the documented HostName rules (§3.5): Windows 2–15
// characters, no dots, not all digits; Linux 2–60 characters, dot-separated
// labels of letters, digits and single inner hyphens.
func validHostName(os, name string) bool {
	if os == OSWindows {
		if len(name) < 2 || len(name) > 15 || strings.Contains(name, ".") {
			return false
		}
		if strings.Trim(name, "0123456789") == "" {
			return false
		}
		return hostLabelRe.MatchString(name)
	}
	if len(name) < 2 || len(name) > 60 {
		return false
	}
	for label := range strings.SplitSeq(name, ".") {
		if !hostLabelRe.MatchString(label) {
			return false
		}
	}
	return true
}
