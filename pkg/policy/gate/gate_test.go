package gate_test

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rampartci/rampart/pkg/policy/finding"
	"github.com/rampartci/rampart/pkg/policy/gate"
)

var now = time.Date(2026, 9, 1, 12, 0, 0, 0, time.UTC)

var (
	critOpenSSL = finding.Finding{ID: "CVE-2025-9230", Package: "libcrypto3", InstalledVersion: "3.5.1-r0", FixedVersion: "3.5.4-r0", Severity: finding.Critical}
	critSSL     = finding.Finding{ID: "CVE-2025-9230", Package: "libssl3", InstalledVersion: "3.5.1-r0", FixedVersion: "3.5.4-r0", Severity: finding.Critical}
	highXNet    = finding.Finding{ID: "CVE-2023-44487", Package: "golang.org/x/net", InstalledVersion: "v0.15.0", FixedVersion: "0.17.0", Severity: finding.High}
	highUnfixed = finding.Finding{ID: "GHSA-rmpt-0000-0001", Package: "github.com/rampartci/fixture-unfixed", InstalledVersion: "v1.0.0", Severity: finding.High}
	medBusybox  = finding.Finding{ID: "CVE-2025-46394", Package: "busybox", InstalledVersion: "1.37.0-r18", FixedVersion: "1.37.0-r19", Severity: finding.Medium}
	lowOpenSSL  = finding.Finding{ID: "CVE-2025-9232", Package: "libcrypto3", InstalledVersion: "3.5.1-r0", FixedVersion: "3.5.4-r0", Severity: finding.Low}
)

func mustParse(t *testing.T, src string) *gate.Policy {
	t.Helper()
	p, err := gate.Parse("policy.yaml", []byte(src))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return p
}

func ids(fs []finding.Finding) []string {
	var out []string
	for _, f := range fs {
		out = append(out, f.ID+"/"+f.Package)
	}
	return out
}

func TestEvaluate(t *testing.T) {
	tests := []struct {
		name         string
		policy       string // empty: gate.Default()
		findings     []finding.Finding
		at           time.Time
		want         gate.Outcome
		wantBlocking []string
		wantWaived   int
		wantUnfixed  int
		wantReason   string // substring of some reason
	}{
		{
			name:     "no findings pass",
			want:     gate.Pass,
			at:       now,
			findings: nil, wantReason: "no findings at CRITICAL/HIGH",
		},
		{
			name:     "medium and low pass by default",
			findings: []finding.Finding{medBusybox, lowOpenSSL},
			at:       now,
			want:     gate.Pass,
		},
		{
			name:         "critical blocks by default, most severe first",
			findings:     []finding.Finding{highXNet, medBusybox, critOpenSSL},
			at:           now,
			want:         gate.Blocked,
			wantBlocking: []string{"CVE-2025-9230/libcrypto3", "CVE-2023-44487/golang.org/x/net"},
			wantReason:   "CVE-2025-9230 (CRITICAL) in libcrypto3 3.5.1-r0, fixed in 3.5.4-r0",
		},
		{
			name:         "unfixed high blocks by default",
			findings:     []finding.Finding{highUnfixed},
			at:           now,
			want:         gate.Blocked,
			wantBlocking: []string{"GHSA-rmpt-0000-0001/github.com/rampartci/fixture-unfixed"},
			wantReason:   "no fix published",
		},
		{
			name:        "ignore_unfixed lets the unfixed high through",
			policy:      "ignore_unfixed: true\n",
			findings:    []finding.Finding{highUnfixed, medBusybox},
			at:          now,
			want:        gate.Pass,
			wantUnfixed: 1,
			wantReason:  "1 unfixed ignored",
		},
		{
			name:         "ignore_unfixed still blocks fixed findings",
			policy:       "ignore_unfixed: true\n",
			findings:     []finding.Finding{highUnfixed, highXNet},
			at:           now,
			want:         gate.Blocked,
			wantBlocking: []string{"CVE-2023-44487/golang.org/x/net"},
			wantUnfixed:  1,
		},
		{
			name:         "block_on critical only",
			policy:       "block_on: [critical]\n",
			findings:     []finding.Finding{highXNet, critOpenSSL},
			at:           now,
			want:         gate.Blocked,
			wantBlocking: []string{"CVE-2025-9230/libcrypto3"},
		},
		{
			name:         "block_on medium",
			policy:       "block_on: [MEDIUM]\n",
			findings:     []finding.Finding{medBusybox, critOpenSSL},
			at:           now,
			want:         gate.Blocked,
			wantBlocking: []string{"CVE-2025-46394/busybox"},
		},
		{
			name:         "empty block_on never blocks",
			policy:       "block_on: []\n",
			findings:     []finding.Finding{critOpenSSL},
			at:           now,
			want:         gate.Pass,
			wantBlocking: nil,
		},
		{
			name: "waiver covers one package only",
			policy: `waivers:
  - id: CVE-2025-9230
    package: libcrypto3
    owner: alice@example.com
    expires: 2026-09-30
`,
			findings:     []finding.Finding{critOpenSSL, critSSL},
			at:           now,
			want:         gate.Blocked,
			wantBlocking: []string{"CVE-2025-9230/libssl3"},
			wantWaived:   1,
		},
		{
			name: "waivers for every blocking finding pass",
			policy: `waivers:
  - {id: CVE-2025-9230, package: libcrypto3, owner: alice, expires: 2026-09-30}
  - {id: CVE-2025-9230, package: libssl3, owner: alice, expires: 2026-09-30}
`,
			findings:   []finding.Finding{critOpenSSL, critSSL, medBusybox},
			at:         now,
			want:       gate.Pass,
			wantWaived: 2,
			wantReason: "2 waived",
		},
		{
			name: "date expiry holds through that day",
			policy: `waivers:
  - {id: CVE-2025-9230, package: libcrypto3, owner: alice, expires: 2026-09-01}
`,
			findings:   []finding.Finding{critOpenSSL},
			at:         time.Date(2026, 9, 1, 23, 59, 59, 0, time.UTC),
			want:       gate.Pass,
			wantWaived: 1,
		},
		{
			name: "expired waiver no longer applies",
			policy: `waivers:
  - {id: CVE-2025-9230, package: libcrypto3, owner: alice, expires: 2026-09-01}
`,
			findings:     []finding.Finding{critOpenSSL},
			at:           time.Date(2026, 9, 2, 0, 0, 0, 0, time.UTC),
			want:         gate.Blocked,
			wantBlocking: []string{"CVE-2025-9230/libcrypto3"},
			wantReason:   "waiver by alice expired 2026-09-02T00:00:00Z",
		},
		{
			name: "RFC 3339 expiry is exact",
			policy: `waivers:
  - {id: CVE-2025-9230, package: libcrypto3, owner: alice, expires: "2026-09-01T12:00:00Z"}
`,
			findings:     []finding.Finding{critOpenSSL},
			at:           now, // exactly the expiry: no longer valid
			want:         gate.Blocked,
			wantBlocking: []string{"CVE-2025-9230/libcrypto3"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := gate.Default()
			if tt.policy != "" {
				p = mustParse(t, tt.policy)
			}
			d := p.Evaluate(tt.findings, tt.at)
			if d.Outcome != tt.want {
				t.Errorf("Outcome = %s, want %s (reasons %q)", d.Outcome, tt.want, d.Reasons)
			}
			if got := ids(d.Blocking); !slices.Equal(got, tt.wantBlocking) {
				t.Errorf("Blocking = %v, want %v", got, tt.wantBlocking)
			}
			if len(d.Waived) != tt.wantWaived || len(d.Unfixed) != tt.wantUnfixed {
				t.Errorf("waived %d unfixed %d, want %d and %d", len(d.Waived), len(d.Unfixed), tt.wantWaived, tt.wantUnfixed)
			}
			// What the verdict records of each waiver applied: the finding,
			// its owner and expiry.
			recs := d.WaiverRecords()
			if len(recs) != len(d.Waived) {
				t.Errorf("WaiverRecords = %+v for %d waived findings", recs, len(d.Waived))
			}
			for i, r := range recs {
				w := d.Waived[i]
				if r.ID != w.Finding.ID || r.Package != w.Finding.Package || r.Owner == "" || r.Owner != w.Waiver.Owner || !r.Expires.Equal(w.Waiver.Expires) || !r.Expires.After(tt.at) {
					t.Errorf("WaiverRecords[%d] = %+v for %+v", i, r, w)
				}
			}
			if tt.wantReason != "" && !strings.Contains(strings.Join(d.Reasons, "\n"), tt.wantReason) {
				t.Errorf("Reasons = %q, want one containing %q", d.Reasons, tt.wantReason)
			}
			if d.PolicyVersion != p.Version || d.PolicyVersion == "" {
				t.Errorf("PolicyVersion = %q, policy %q", d.PolicyVersion, p.Version)
			}
		})
	}
}

func TestScanFailedNeverPasses(t *testing.T) {
	d := gate.ScanFailed(errors.New("pull 127.0.0.1:5000/app@sha256:…: image could not be pulled"), "default")
	if d.Outcome != gate.Error || len(d.Reasons) != 1 || !strings.Contains(d.Reasons[0], "could not be pulled") {
		t.Errorf("ScanFailed = %+v", d)
	}
}

func TestParseValid(t *testing.T) {
	src := `# team policy
block_on: [CRITICAL, high]
ignore_unfixed: true
waivers:
  - id: CVE-2025-9230
    package: libcrypto3
    owner: alice@example.com
    expires: 2026-09-30
    reason: not reachable from our TLS code path
`
	p := mustParse(t, src)
	if !slices.Equal(p.BlockOn, []finding.Severity{finding.Critical, finding.High}) || !p.IgnoreUnfixed {
		t.Errorf("policy = %+v", p)
	}
	want := gate.Waiver{ID: "CVE-2025-9230", Package: "libcrypto3", Owner: "alice@example.com",
		Expires: time.Date(2026, 10, 1, 0, 0, 0, 0, time.UTC), Reason: "not reachable from our TLS code path", Line: 5}
	if len(p.Waivers) != 1 || p.Waivers[0] != want {
		t.Errorf("waivers = %+v, want %+v", p.Waivers, want)
	}
	if !strings.HasPrefix(p.Version, "sha256:") || len(p.Version) != 71 {
		t.Errorf("Version = %q", p.Version)
	}
	if other := mustParse(t, src+"\n"); other.Version == p.Version {
		t.Error("different policy bytes gave the same version")
	}
}

func TestParseEmptyIsDefault(t *testing.T) {
	for _, src := range []string{"", "# nothing yet\n", "---\n"} {
		p := mustParse(t, src)
		if !slices.Equal(p.BlockOn, gate.Default().BlockOn) || p.IgnoreUnfixed || len(p.Waivers) != 0 {
			t.Errorf("Parse(%q) = %+v, want the default policy", src, p)
		}
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name string
		src  string
		want []string // Problem.String() of every problem, in order
	}{
		{
			name: "yaml syntax",
			src:  "block_on: [CRITICAL\nwaivers: []\n",
			// yaml.v3 reports the line of the unclosed '['.
			want: []string{"policy.yaml:1: did not find expected ',' or ']'"},
		},
		{
			name: "top level not a mapping",
			src:  "- CRITICAL\n",
			want: []string{`policy.yaml:1:1: must be a mapping, got a list`},
		},
		{
			name: "unknown field",
			src:  "block_on: [HIGH]\nblock_unfixed: true\n",
			want: []string{"policy.yaml:2:1: block_unfixed: unknown field (known: block_on, ignore_unfixed, waivers)"},
		},
		{
			name: "duplicate field",
			src:  "block_on: [HIGH]\nignore_unfixed: true\nblock_on: [LOW]\n",
			want: []string{"policy.yaml:3:1: block_on: duplicate field"},
		},
		{
			name: "bad severity",
			src:  "block_on:\n  - CRITICAL\n  - severe\n",
			want: []string{`policy.yaml:3:5: block_on[1]: unknown severity "severe" (want one of UNKNOWN, LOW, MEDIUM, HIGH, CRITICAL)`},
		},
		{
			name: "block_on not a list",
			src:  "block_on: CRITICAL\n",
			want: []string{`policy.yaml:1:11: block_on: must be a list of severities, got "CRITICAL"`},
		},
		{
			name: "ignore_unfixed not a bool",
			src:  "ignore_unfixed: yes please\n",
			want: []string{`policy.yaml:1:17: ignore_unfixed: must be true or false, got "yes please"`},
		},
		{
			name: "waiver missing owner and expiry",
			src: `waivers:
  - id: CVE-2025-9230
    package: libcrypto3
`,
			want: []string{
				"policy.yaml:2:5: waivers[0].owner: required",
				"policy.yaml:2:5: waivers[0].expires: required",
			},
		},
		{
			name: "waiver bad expiry and unknown field",
			src: `waivers:
  - id: CVE-2025-9230
    package: libcrypto3
    owner: alice
    expires: next tuesday
  - id: CVE-2023-44487
    package: golang.org/x/net
    owner: bob
    expires: 2026-10-01
    ticket: SEC-12
`,
			want: []string{
				`policy.yaml:5:14: waivers[0].expires: "next tuesday" is not a date (2006-01-02) or RFC 3339 time`,
				"policy.yaml:10:5: waivers[1].ticket: unknown field (known: id, package, owner, expires, reason)",
			},
		},
		{
			name: "waiver empty owner",
			src:  "waivers:\n  - {id: CVE-1, package: p, owner: \"\", expires: 2026-01-01}\n",
			want: []string{"policy.yaml:2:36: waivers[0].owner: must not be empty"},
		},
		{
			name: "duplicate waiver",
			src: `waivers:
  - {id: CVE-1, package: p, owner: a, expires: 2026-01-01}
  - {id: CVE-1, package: p, owner: b, expires: 2027-01-01}
`,
			want: []string{"policy.yaml:3:5: waivers[1]: waives CVE-1 in p again (already waived by waivers[0])"},
		},
		{
			name: "waivers not a list",
			src:  "waivers:\n  id: CVE-1\n",
			want: []string{"policy.yaml:2:3: waivers: must be a list of waivers, got a mapping"},
		},
		{
			name: "waiver not a mapping",
			src:  "waivers:\n  - CVE-1\n",
			want: []string{`policy.yaml:2:5: waivers[0]: must be a mapping, got "CVE-1"`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := gate.Parse("policy.yaml", []byte(tt.src))
			if err == nil {
				t.Fatalf("Parse succeeded: %+v", p)
			}
			var got []string
			for _, pr := range gate.Problems(err) {
				got = append(got, pr.String())
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("problems:\n  %s\nwant:\n  %s", strings.Join(got, "\n  "), strings.Join(tt.want, "\n  "))
			}
		})
	}
}

func TestLoadFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "rampart-policy.yaml")
	if err := os.WriteFile(path, []byte("block_on: [CRITICAL]\nwaivers: 3\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := gate.LoadFile(path)
	if err == nil || !strings.Contains(err.Error(), path+":2:10: waivers: must be a list of waivers, got \"3\"") {
		t.Errorf("LoadFile error = %v", err)
	}
	if _, err := gate.LoadFile(filepath.Join(t.TempDir(), "missing.yaml")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: err = %v, want ErrNotExist", err)
	}
}

func TestDigest(t *testing.T) {
	def := mustParse(t, gate.DefaultSource)
	if got, want := gate.Default().Digest(), strings.TrimPrefix(def.Version, "sha256:"); got != want {
		t.Errorf("default Digest = %s, want the digest of DefaultSource %s", got, want)
	}
	if !slices.Equal(def.BlockOn, gate.Default().BlockOn) {
		t.Errorf("DefaultSource blocks on %v, Default on %v", def.BlockOn, gate.Default().BlockOn)
	}
	path := filepath.Join(t.TempDir(), "gate.yaml")
	if err := os.WriteFile(path, []byte("block_on: [MEDIUM]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	p, err := gate.LoadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if p.Digest() == gate.Default().Digest() || "sha256:"+p.Digest() != p.Version || p.URI != "file://"+path {
		t.Errorf("file policy: Digest %s Version %s URI %s", p.Digest(), p.Version, p.URI)
	}
}
